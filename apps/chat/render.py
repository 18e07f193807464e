"""HTML for the chat page's pieces: messages, the streaming turn, controls, errors.

The page view and the consumer render the same templates, so a reloaded page and a page
that watched the stream show the same thing.
"""
from __future__ import annotations

import json
import math
from typing import Any

from django.template.loader import render_to_string

from apps.chat.markdown import render_markdown
from apps.chat.services import ChatPlan, Message, answer_check
from apps.chat.streaming import oob_replace
from apps.proxy.models import Run


def _prob_bucket(p: float) -> int:
    """0 (confident) .. 4 (unsure): the heat-map colour."""
    if p >= 0.9:
        return 0
    if p >= 0.7:
        return 1
    if p >= 0.45:
        return 2
    if p >= 0.2:
        return 3
    return 4


def logprob_tokens(logprobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each token with its probability and its alternatives, for the heat-map spans."""
    out = []
    for item in logprobs or ():
        logprob = item.get("logprob")
        p = math.exp(logprob) if isinstance(logprob, (int, float)) else None
        alts = []
        for top in item.get("top_logprobs") or ():
            lp = top.get("logprob")
            if isinstance(lp, (int, float)):
                alts.append(f"{json.dumps(top.get('token', ''), ensure_ascii=False)}  {math.exp(lp) * 100:.1f}%")
        out.append({
            "token": item.get("token", ""),
            "p": p,
            "percent": f"{p * 100:.1f}" if p is not None else "?",
            "bucket": _prob_bucket(p) if p is not None else 4,
            "alts": "\n".join(alts),
            "logprob": f"{logprob:.3f}" if isinstance(logprob, (int, float)) else "",
        })
    return out


def _tool_calls_view(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for call in calls or ():
        function = call.get("function") or {}
        raw = function.get("arguments") or ""
        try:
            pretty, ok = json.dumps(json.loads(raw), indent=2, ensure_ascii=False), True
        except json.JSONDecodeError:
            pretty, ok = raw, False
        out.append({"id": call.get("id", ""), "name": function.get("name", ""), "arguments": pretty, "valid": ok})
    return out


def _choices(run: Run, response_format: dict[str, Any] | None) -> list[dict[str, Any]]:
    choices = (run.output or {}).get("choices") or [{"index": 0, "text": run.output_text}]
    fmt = response_format if response_format is not None else (run.params or {}).get("response_format")
    out = []
    for choice in choices:
        text = choice.get("text") or ""
        out.append({
            "index": choice.get("index", 0),
            "number": choice.get("index", 0) + 1,
            "text": text,
            "html": render_markdown(text),
            "finish_reason": choice.get("finish_reason"),
            "tokens": logprob_tokens(choice.get("logprobs") or []),
            "tool_calls": _tool_calls_view(choice.get("tool_calls") or []),
            "check": answer_check(text, response_format=fmt) if text else None,
            "refusal": choice.get("refusal", ""),
        })
    return out


def column_label(run: Run) -> str:
    temp = (run.params or {}).get("temperature")
    return f"{run.model} · t={temp:g}" if isinstance(temp, (int, float)) else run.model


def message_context(message: Message, runs: list[Run], *, tool_names: dict[str, str] | None = None,
                    response_format: dict[str, Any] | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {
        "m": message,
        "tool_calls_json": json.dumps(message.tool_calls) if message.tool_calls else "",
        "images_csv": ",".join(map(str, message.images)),
        "runs_csv": ",".join(map(str, message.runs)),
        "runs": runs,
        "tool_name": (tool_names or {}).get(message.tool_call_id, ""),
        "html": render_markdown(message.content) if message.role == "assistant" else "",
        "tool_views": _tool_calls_view(message.tool_calls),
    }
    if message.compare:
        context["columns"] = [
            {"run": run, "label": column_label(run), "choices": _choices(run, response_format)} for run in runs
        ]
    elif runs:
        run = runs[0]
        context["run"] = run
        choices = _choices(run, response_format)
        context["choices"] = choices
        context["multi"] = len(choices) > 1
        context["check"] = choices[0]["check"] if choices else None
        context["tokens"] = choices[0]["tokens"] if choices else []
    return context


def message_html(message: Message, runs: list[Run], **kwargs: Any) -> str:
    return render_to_string("chat/_message.html", message_context(message, runs, **kwargs))


def final_turn_html(*, message: Message, runs: list[Run], extra: list[Message], response_format: dict[str, Any] | None) -> str:
    """The answer as the page keeps it, swapped over the streaming turn, and the Run button back."""
    names = {call.get("id", ""): (call.get("function") or {}).get("name", "") for call in message.tool_calls}
    parts = [oob_replace(message_html(message, runs, response_format=response_format))]
    if extra:
        tools = "".join(message_html(m, [], tool_names=names) for m in extra)
        parts.append(f'<div hx-swap-oob="beforeend:#messages">{tools}</div>')
    parts.append(controls_html(running=False))
    return "".join(parts)


def column_key(uid: str, index: int) -> str:
    """What a streaming column's elements are named by (msg-<key>-<choice>, tc-, status-):
    the turn's uid, known before its Run rows are written, and the column's place."""
    return f"{uid}-{index}"


def streaming_turn_html(*, uid: str, plan: ChatPlan, streams: list, snapshot: bool = False) -> str:
    columns = []
    for index, (column, stream) in enumerate(zip(plan.columns, streams)):
        n = int(column.request.get("n") or 1)
        texts = [stream.acc.text(i) if snapshot else "" for i in range(n)]
        tools = []
        if snapshot:
            for i in range(n):
                tools.append("".join(f"\n{c['function']['name']}({c['function']['arguments']}" for c in stream.acc.tool_calls(i)))
        else:
            tools = [""] * n
        columns.append({
            "key": column_key(uid, index), "label": column.label,
            "choices": [{"index": i, "number": i + 1, "text": texts[i], "tools": tools[i]} for i in range(n)],
        })
    html = render_to_string("chat/_streaming.html", {"uid": uid, "columns": columns, "compare": len(columns) > 1})
    return oob_replace(html) if snapshot else html


def conversation_field_html(conversation_id: int) -> str:
    """The form's conversation id, once the conversation is written: the next Run continues it."""
    return f'<input type="hidden" name="conversation" id="conversation-id" value="{conversation_id}" hx-swap-oob="true">'


def controls_html(*, running: bool) -> str:
    return render_to_string("chat/_controls.html", {"running": running, "oob": True})


def error_html(message: str, *, field: str = "") -> str:
    return render_to_string("chat/_error.html", {"error": message, "field": field, "oob": True})


def clear_error_html() -> str:
    return render_to_string("chat/_error.html", {"error": "", "oob": True})


def composer_clear_html() -> str:
    """After a Run that sent the draft: an empty composer (and no pending images)."""
    return render_to_string("chat/_composer_input.html", {"oob": True})
