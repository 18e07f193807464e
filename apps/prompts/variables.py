"""`{{name}}` placeholders in prompts: find them, check them, fill them in.

Shared by the prompt library (inputs shown for each variable), the completions and chat
playgrounds (a run with variables) and evaluations (one row of values per run). A broken
placeholder or a missing value is an error that names it, never a silently sent `{{`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

# A name is letters, digits, underscores, dots or dashes, with optional spaces inside the
# braces: {{ customer_name }}. Anything else between {{ and }} is reported, not ignored.
NAME = r"[A-Za-z_][A-Za-z0-9_.\-]*"
PLACEHOLDER = re.compile(r"\{\{\s*(" + NAME + r")\s*\}\}")
OPENING = re.compile(r"\{\{")


@dataclass(frozen=True)
class VariableError(ValueError):
    """What is wrong and where: `where` says which message or field, `line` is 1-based."""

    message: str
    where: str = ""
    line: int | None = None

    def __str__(self) -> str:
        place = " ".join(part for part in (self.where, f"line {self.line}" if self.line else "") if part)
        return f"{place}: {self.message}" if place else self.message


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def check(text: str, *, where: str = "") -> None:
    """Raise VariableError at the first `{{` that does not open a well-formed placeholder."""
    for opening in OPENING.finditer(text):
        start = opening.start()
        if start > 0 and text[start - 1] == "{":
            continue  # part of a longer run of braces already examined
        match = PLACEHOLDER.match(text, start)
        if match:
            continue
        close = text.find("}}", start)
        newline = text.find("\n", start)
        line = _line_of(text, start)
        if close == -1 or (newline != -1 and newline < close):
            raise VariableError("'{{' is never closed: add '}}' after the variable name", where, line)
        inner = text[start + 2:close].strip()
        if not inner:
            raise VariableError("'{{}}' has no variable name inside", where, line)
        raise VariableError(
            f"'{{{{{inner}}}}}' is not a valid variable name: use letters, digits and underscores, "
            "starting with a letter",
            where, line,
        )


def names_in(text: str) -> list[str]:
    """Variable names in order of first appearance."""
    seen: dict[str, None] = {}
    for match in PLACEHOLDER.finditer(text or ""):
        seen.setdefault(match.group(1), None)
    return list(seen)


def names_in_all(texts: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for text in texts:
        for name in names_in(text):
            seen.setdefault(name, None)
    return list(seen)


def render(text: str, values: Mapping[str, Any], *, where: str = "") -> str:
    """Fill every placeholder; a name with no value (or an empty one is fine) raises."""
    check(text, where=where)
    missing = [name for name in names_in(text) if name not in values or values[name] is None]
    if missing:
        raise VariableError(
            f"no value for {', '.join(repr(name) for name in missing)}: fill in "
            f"{'this variable' if len(missing) == 1 else 'these variables'} before running",
            where,
        )
    return PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), text)


def message_texts(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(where, text) for every text part of chat messages, for checking and rendering."""
    out = []
    for index, message in enumerate(messages):
        label = f"message {index + 1} ({message.get('role', '?')})"
        content = message.get("content")
        if isinstance(content, str):
            out.append((label, content))
        elif isinstance(content, list):
            out.extend((label, part.get("text", "")) for part in content if part.get("type") == "text")
    return out


def render_messages(messages: list[dict[str, Any]], values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A copy of the messages with every text part rendered; images and tool calls untouched."""
    rendered = []
    for index, message in enumerate(messages):
        label = f"message {index + 1} ({message.get('role', '?')})"
        copy = dict(message)
        content = message.get("content")
        if isinstance(content, str):
            copy["content"] = render(content, values, where=label)
        elif isinstance(content, list):
            copy["content"] = [
                {**part, "text": render(part.get("text", ""), values, where=label)} if part.get("type") == "text" else part
                for part in content
            ]
        rendered.append(copy)
    return rendered
