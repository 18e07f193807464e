"""Check a fine-tuning JSONL file before it is uploaded, as OpenAI's data-preparation guide
does (cookbook "Data preparation and analysis for chat model fine-tuning"), and estimate
what training on it costs.

Two formats, one example per line:
- chat (supervised): {"messages": [...], "tools": [...]?, "parallel_tool_calls": bool?}
  assistant messages may carry "weight": 0 or 1 (0 = not trained on);
- preference (DPO): {"input": {"messages": [...], "tools"?}, "preferred_output": [assistant
  message], "non_preferred_output": [assistant message]}.

Every problem names its line number and says what to fix. The file is read line by line,
so a large upload is never held in memory whole.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from apps.finetunes.bases import LOCAL_BASE, MIN_EXAMPLES, auto_epochs, base_for
from apps.proxy import tokens

logger = logging.getLogger(__name__)

CHAT = "chat"
PREFERENCE = "preference"

ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call", "refusal"}
CHAT_KEYS = {"messages", "tools", "functions", "parallel_tool_calls"}
PREFERENCE_KEYS = {"input", "preferred_output", "non_preferred_output"}
PREFERENCE_INPUT_KEYS = {"messages", "tools", "parallel_tool_calls"}
PART_TYPES = {"text", "image_url"}
MAX_ISSUES_KEPT = 200  # a file broken on every line still gets a readable report


@dataclass
class Issue:
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"Line {self.line}: {self.message}" if self.line else self.message


@dataclass
class Report:
    model: str
    format: str = ""
    lines: int = 0
    examples: int = 0
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    error_count: int = 0
    tokens: list[int] = field(default_factory=list)  # per valid example, in file order
    over_limit: list[tuple[int, int]] = field(default_factory=list)  # (line, tokens)
    example_limit: int | None = None
    images: int = 0
    first_rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error_count == 0 and self.examples > 0

    def error(self, line: int | None, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ISSUES_KEPT:
            self.errors.append(Issue(line, message))

    def warn(self, line: int | None, message: str) -> None:
        if len(self.warnings) < MAX_ISSUES_KEPT:
            self.warnings.append(Issue(line, message))

    # -- numbers people want -------------------------------------------------------------
    @property
    def total_tokens(self) -> int:
        return sum(self.tokens)

    @property
    def billed_tokens_per_epoch(self) -> int:
        """Examples over the limit are truncated to it, so that is what is trained on."""
        limit = self.example_limit
        return sum(min(t, limit) if limit else t for t in self.tokens)

    def estimate(self, *, epochs: int | None = None, model: str | None = None) -> dict[str, Any]:
        model = model or self.model
        base = base_for(model)
        n_epochs = epochs or auto_epochs(self.examples)
        training_tokens = self.billed_tokens_per_epoch * n_epochs
        price = base.training_per_million if base else None
        cost = None if price is None else (price * training_tokens / Decimal(1_000_000)).quantize(Decimal("0.0001"))
        return {
            "model": model,
            "epochs": n_epochs,
            "epochs_auto": epochs is None,
            "tokens_per_epoch": self.billed_tokens_per_epoch,
            "training_tokens": training_tokens,
            "price_per_million": price,
            "cost": cost,
            "local": bool(base and base.local),
        }

    def token_stats(self) -> dict[str, int]:
        if not self.tokens:
            return {"min": 0, "max": 0, "mean": 0, "median": 0}
        ordered = sorted(self.tokens)
        return {
            "min": ordered[0],
            "max": ordered[-1],
            "mean": round(sum(ordered) / len(ordered)),
            "median": ordered[len(ordered) // 2],
        }

    def as_dict(self) -> dict[str, Any]:
        """What a TrainingFile keeps (JSON): enough to show the report again without re-reading."""
        return {
            "model": self.model,
            "format": self.format,
            "lines": self.lines,
            "examples": self.examples,
            "errors": [[i.line, i.message] for i in self.errors],
            "error_count": self.error_count,
            "warnings": [[i.line, i.message] for i in self.warnings],
            "tokens": self.tokens,
            "over_limit": self.over_limit,
            "example_limit": self.example_limit,
            "images": self.images,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        report = cls(model=data.get("model", ""))
        report.format = data.get("format", "")
        report.lines = data.get("lines", 0)
        report.examples = data.get("examples", 0)
        report.errors = [Issue(line, msg) for line, msg in data.get("errors", [])]
        report.error_count = data.get("error_count", len(report.errors))
        report.warnings = [Issue(line, msg) for line, msg in data.get("warnings", [])]
        report.tokens = list(data.get("tokens", []))
        report.over_limit = [tuple(x) for x in data.get("over_limit", [])]
        report.example_limit = data.get("example_limit")
        report.images = data.get("images", 0)
        return report


# -- the checks --------------------------------------------------------------------------------

def validate_jsonl(lines: Iterable[bytes | str], *, model: str = LOCAL_BASE, expected_format: str | None = None, keep_rows: int = 5) -> Report:
    """Validate a JSONL file given as an iterable of lines (a file object works)."""
    base = base_for(model)
    report = Report(model=model, example_limit=base.example_limit if base else None)
    vision = bool(base and base.vision)
    file_format = expected_format
    for number, raw in enumerate(lines, start=1):
        report.lines = number
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                report.error(number, "is not valid UTF-8 text. Save the file as UTF-8.")
                continue
        if not raw.strip():
            continue
        try:
            example = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            report.error(number, f"is not valid JSON ({_json_reason(exc)}). Each line must be one complete JSON object.")
            continue
        if not isinstance(example, dict):
            report.error(number, f"is a JSON {type(example).__name__}, not an object like {{\"messages\": [...]}}.")
            continue
        line_format = PREFERENCE if "input" in example or "preferred_output" in example else CHAT
        if file_format is None:
            file_format = line_format
        elif line_format != file_format:
            report.error(number, f"is in the {line_format} format but this file is in the {file_format} format; use one format per file.")
            continue
        before = report.error_count
        if line_format == CHAT:
            messages = _check_chat(example, number, report, vision=vision)
        else:
            messages = _check_preference(example, number, report, vision=vision)
        if report.error_count != before or messages is None:
            continue
        report.examples += 1
        count = _count_tokens(messages, example, model)
        report.tokens.append(count)
        if report.example_limit and count > report.example_limit:
            report.over_limit.append((number, count))
            report.warn(number, f"has {count:,} tokens, over {model}'s {report.example_limit:,}-token limit per example: it will be truncated.")
        if len(report.first_rows) < keep_rows:
            report.first_rows.append(example)
    report.format = file_format or CHAT
    if report.examples == 0 and report.error_count == 0:
        report.error(None, "The file has no examples. Put one JSON object per line, e.g. {\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}]}.")
    elif 0 < report.examples < MIN_EXAMPLES and not (base and base.local):
        report.warn(None, f"Only {report.examples} examples: OpenAI needs at least {MIN_EXAMPLES} (50 to 100 usually help more).")
    if report.format == PREFERENCE and base and not base.dpo and not base.local:
        report.warn(None, f"{model} does not offer preference (DPO) fine-tuning; pick a gpt-4o or gpt-4.1 base.")
    return report


def _json_reason(exc: orjson.JSONDecodeError) -> str:
    msg = str(exc)
    return msg.split(":", 1)[0] if ":" in msg else msg


def _check_chat(example: dict[str, Any], line: int, report: Report, *, vision: bool) -> list[dict[str, Any]] | None:
    unknown = sorted(set(example) - CHAT_KEYS)
    if unknown:
        report.error(line, f"has unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; an example has \"messages\" (and optionally \"tools\", \"parallel_tool_calls\").")
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        report.error(line, "has no \"messages\" list.")
        return None
    _check_tools(example.get("tools"), line, report)
    _check_messages(messages, line, report, vision=vision, where="")
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        report.error(line, "has no assistant message: each example needs the answer the model should learn.")
    elif not (isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant"):
        report.error(line, f"ends with a {messages[-1].get('role') if isinstance(messages[-1], dict) else 'non-message'} message; each example must end with an assistant message.")
    return messages


def _check_preference(example: dict[str, Any], line: int, report: Report, *, vision: bool) -> list[dict[str, Any]] | None:
    unknown = sorted(set(example) - PREFERENCE_KEYS)
    if unknown:
        report.error(line, f"has unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; a preference example has \"input\", \"preferred_output\" and \"non_preferred_output\".")
    data = example.get("input")
    if not isinstance(data, dict):
        report.error(line, "has no \"input\" object with the conversation so far.")
        return None
    unknown = sorted(set(data) - PREFERENCE_INPUT_KEYS)
    if unknown:
        report.error(line, f"\"input\" has unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}.")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        report.error(line, "\"input\" has no \"messages\" list.")
        return None
    _check_tools(data.get("tools"), line, report)
    _check_messages(messages, line, report, vision=vision, where="input ")
    outputs = []
    for key in ("preferred_output", "non_preferred_output"):
        value = example.get(key)
        if not isinstance(value, list) or len(value) != 1:
            report.error(line, f"\"{key}\" must be a list of exactly one assistant message.")
            continue
        if not isinstance(value[0], dict) or value[0].get("role") != "assistant":
            report.error(line, f"\"{key}\" must hold an assistant message.")
            continue
        _check_messages(value, line, report, vision=False, where=f"{key} ")
        outputs.extend(value)
    if example.get("preferred_output") == example.get("non_preferred_output") and outputs:
        report.error(line, "preferred and non-preferred outputs are the same; DPO learns from the difference.")
    return messages + outputs


def _check_tools(tools: Any, line: int, report: Report) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        report.error(line, "\"tools\" must be a list of {\"type\": \"function\", \"function\": {...}}.")
        return
    for i, tool in enumerate(tools, start=1):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict) or not function.get("name"):
            report.error(line, f"tool {i} must be {{\"type\": \"function\", \"function\": {{\"name\": ..., \"parameters\": ...}}}}.")


def _check_messages(messages: list[Any], line: int, report: Report, *, vision: bool, where: str) -> None:
    for i, message in enumerate(messages, start=1):
        label = f"{where}message {i}"
        if not isinstance(message, dict):
            report.error(line, f"{label} is not an object with \"role\" and \"content\".")
            continue
        unknown = sorted(set(message) - MESSAGE_KEYS)
        if unknown:
            report.error(line, f"{label} has unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}.")
        role = message.get("role")
        if role not in ROLES:
            report.error(line, f"{label} has role {role!r}; use one of system, user, assistant, tool.")
            continue
        if "weight" in message:
            if role != "assistant":
                report.error(line, f"{label}: \"weight\" is only allowed on assistant messages.")
            elif message["weight"] not in (0, 1) or isinstance(message["weight"], bool):
                report.error(line, f"{label}: \"weight\" must be 0 or 1, not {message['weight']!r}.")
        content = message.get("content")
        has_calls = bool(message.get("tool_calls") or message.get("function_call"))
        if content is None or content == "" or content == []:
            if not (role == "assistant" and has_calls):
                report.error(line, f"{label} ({role}) has empty content.")
            continue
        if isinstance(content, str):
            if not content.strip():
                report.error(line, f"{label} ({role}) has empty content.")
            continue
        if not isinstance(content, list):
            report.error(line, f"{label} content must be text or a list of parts, not {type(content).__name__}.")
            continue
        for j, part in enumerate(content, start=1):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in PART_TYPES:
                report.error(line, f"{label} part {j} has type {kind!r}; use \"text\" or \"image_url\".")
            elif kind == "text" and not str(part.get("text") or "").strip():
                report.error(line, f"{label} part {j} is empty text.")
            elif kind == "image_url":
                url = (part.get("image_url") or {}).get("url") if isinstance(part.get("image_url"), dict) else None
                if not vision:
                    report.error(line, f"{label} part {j} is an image, but {report.model} does not take images; remove it or pick a vision base (gpt-4o, gpt-4.1).")
                elif role != "user":
                    report.error(line, f"{label} part {j}: images are only allowed in user messages.")
                elif not url:
                    report.error(line, f"{label} part {j} has no image_url.url.")
                else:
                    report.images += 1


def _count_tokens(messages: list[dict[str, Any]], example: dict[str, Any], model: str) -> int:
    """Tokens of one example as OpenAI counts a chat request (tools' JSON counted as text).

    The local base uses its own tokenizer; tiktoken's count is a close estimate for it.
    """
    count = tokens.count_messages(messages, model=model)
    tools = example.get("tools") or (example.get("input") or {}).get("tools")
    if tools:
        count += tokens.count_text(orjson.dumps(tools).decode(), model=model)
    return count
