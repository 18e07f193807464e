"""HTML for the completions page's pieces: the document (prompt + completion), controls, errors.

The page view (replaying a run) and the consumer (after a run) render the same template,
so a reloaded result and a watched one look the same. Model text is always escaped by
the template engine; it is shown as plain text, never as markdown (a base model's output
is a continuation of the prompt, not a formatted answer).
"""
from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string

from apps.chat.render import logprob_tokens
from apps.chat.streaming import oob_replace
from apps.proxy.models import Run


def _prompt_of(run: Run) -> str:
    prompt = (run.input or {}).get("prompt", "")
    return prompt if isinstance(prompt, str) else "\n".join(map(str, prompt))


def _heat(tokens: list[dict[str, Any]], text: str, *, skip_chars: int = 0) -> list[dict[str, Any]] | None:
    """The tokens that spell `text` exactly (after skipping an echoed prompt), else None.

    A provider that trims a stop sequence (or echoes the prompt without logprobs) returns
    tokens that do not add up to the text: then the heat-map is shown apart, not over it.
    """
    if skip_chars:
        seen, kept = 0, []
        for token in tokens:
            if seen >= skip_chars:
                kept.append(token)
            seen += len(token["token"])
        tokens = kept
    if tokens and "".join(t["token"] for t in tokens) == text:
        return tokens
    return None


def choices_view(run: Run) -> list[dict[str, Any]]:
    prompt = _prompt_of(run)
    echo = bool((run.params or {}).get("echo"))
    raw_choices = (run.output or {}).get("choices") or [{"index": 0, "text": run.output_text}]
    out = []
    for choice in raw_choices:
        text = choice.get("text") or ""
        shown_prompt, completion, skip = prompt, text, 0
        if echo and text.startswith(prompt):
            completion, skip = text[len(prompt):], len(prompt)
        tokens = logprob_tokens(choice.get("logprobs") or [])
        inline = _heat(tokens, completion, skip_chars=skip) if tokens else None
        out.append({
            "index": choice.get("index", 0),
            "number": choice.get("index", 0) + 1,
            "prompt": shown_prompt,
            "text": completion,
            "full": shown_prompt + completion,
            "finish_reason": choice.get("finish_reason"),
            "inline_tokens": inline,
            "tokens": tokens if tokens and inline is None else [],
        })
    return out


def result_html(run: Run, *, oob: bool = False) -> str:
    choices = choices_view(run)
    html = render_to_string("completions/_result.html", {
        "run": run, "choices": choices, "multi": len(choices) > 1,
        "suffix": (run.input or {}).get("suffix", ""),
        "logprobs": any(c["inline_tokens"] or c["tokens"] for c in choices),
    })
    return oob_replace(html) if oob else html


def streaming_html(*, run: Run, prompt: str, suffix: str, n: int, echo: bool) -> str:
    """The document while it streams: the prompt, an empty completion per choice, the suffix."""
    choices = [{"index": i, "number": i + 1} for i in range(n)]
    return oob_replace(render_to_string("completions/_streaming.html", {
        "run": run, "prompt": "" if echo else prompt, "suffix": suffix, "choices": choices, "multi": n > 1,
    }))


def controls_html(*, running: bool) -> str:
    return render_to_string("chat/_controls.html", {"running": running, "oob": True})


def error_html(message: str, *, field: str = "") -> str:
    return render_to_string("chat/_error.html", {"error": message, "field": field, "oob": True})


def clear_error_html() -> str:
    return render_to_string("chat/_error.html", {"error": "", "oob": True})
