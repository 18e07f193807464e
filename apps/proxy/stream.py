"""Fold a stream of OpenAI-shaped chunks into the final answer.

One accumulator per run: `feed()` appends each delta to per-choice buffers (no objects
per chunk beyond the parsed dict itself), and the final message is built once at the end.
Pages read `text(i)` between frames; /v1 builds the non-streamed reply from `chat_result()`.
"""
from __future__ import annotations

import time
from typing import Any


class _Choice:
    __slots__ = ("parts", "role", "tool_calls", "logprobs", "finish_reason", "refusal")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.role = "assistant"
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.logprobs: list[dict[str, Any]] = []
        self.finish_reason: str | None = None
        self.refusal: list[str] = []


class StreamAccumulator:
    def __init__(self, *, kind: str = "chat") -> None:
        self.kind = kind  # "chat" or "completion"
        self.choices: dict[int, _Choice] = {}
        self.usage: dict[str, Any] | None = None
        self.id: str | None = None
        self.model: str | None = None
        self.created: int | None = None
        self.system_fingerprint: str | None = None
        self.first_token_at: float | None = None
        self.chunks = 0

    def _choice(self, index: int) -> _Choice:
        found = self.choices.get(index)
        if found is None:
            found = self.choices[index] = _Choice()
        return found

    def feed(self, chunk: dict[str, Any]) -> None:
        self.chunks += 1
        if self.id is None:
            self.id = chunk.get("id")
            self.model = chunk.get("model")
            self.created = chunk.get("created")
            self.system_fingerprint = chunk.get("system_fingerprint")
        usage = chunk.get("usage")
        if usage:
            self.usage = usage
        for raw in chunk.get("choices") or ():
            choice = self._choice(raw.get("index", 0))
            if self.kind == "chat":
                delta = raw.get("delta") or {}
                content = delta.get("content")
                if content:
                    choice.parts.append(content)
                    if self.first_token_at is None:
                        self.first_token_at = time.perf_counter()
                if delta.get("role"):
                    choice.role = delta["role"]
                if delta.get("refusal"):
                    choice.refusal.append(delta["refusal"])
                if delta.get("tool_calls"):
                    if self.first_token_at is None:
                        self.first_token_at = time.perf_counter()
                    self._tool_calls(choice, delta["tool_calls"])
            else:
                text = raw.get("text")
                if text:
                    choice.parts.append(text)
                    if self.first_token_at is None:
                        self.first_token_at = time.perf_counter()
            logprobs = raw.get("logprobs")
            if logprobs:
                self._logprobs(choice, logprobs)
            if raw.get("finish_reason"):
                choice.finish_reason = raw["finish_reason"]

    @staticmethod
    def _tool_calls(choice: _Choice, deltas: list[dict[str, Any]]) -> None:
        for delta in deltas:
            index = delta.get("index", len(choice.tool_calls))
            call = choice.tool_calls.get(index)
            if call is None:
                call = choice.tool_calls[index] = {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
            if delta.get("id"):
                call["id"] = delta["id"]
            function = delta.get("function") or {}
            if function.get("name"):
                call["function"]["name"] += function["name"]
            if function.get("arguments"):
                call["function"]["arguments"] += function["arguments"]

    @staticmethod
    def _logprobs(choice: _Choice, logprobs: dict[str, Any]) -> None:
        if "content" in logprobs and logprobs["content"]:  # chat shape
            choice.logprobs.extend(logprobs["content"])
        elif logprobs.get("tokens"):  # legacy completions shape: parallel lists
            tops = logprobs.get("top_logprobs") or [None] * len(logprobs["tokens"])
            for token, logprob, top in zip(logprobs["tokens"], logprobs.get("token_logprobs") or [], tops):
                choice.logprobs.append(
                    {
                        "token": token,
                        "logprob": logprob,
                        "top_logprobs": [{"token": t, "logprob": lp} for t, lp in (top or {}).items()],
                    }
                )

    # -- reading --------------------------------------------------------------------------
    def text(self, index: int = 0) -> str:
        choice = self.choices.get(index)
        return "".join(choice.parts) if choice else ""

    def texts(self) -> list[str]:
        return [self.text(i) for i in sorted(self.choices)] or [""]

    def finish_reason(self, index: int = 0) -> str | None:
        choice = self.choices.get(index)
        return choice.finish_reason if choice else None

    def tool_calls(self, index: int = 0) -> list[dict[str, Any]]:
        choice = self.choices.get(index)
        return [choice.tool_calls[i] for i in sorted(choice.tool_calls)] if choice else []

    @property
    def finished(self) -> bool:
        """Every choice reported a finish reason (a stream cut short has none)."""
        return bool(self.choices) and all(c.finish_reason for c in self.choices.values())

    def message(self, index: int = 0) -> dict[str, Any]:
        choice = self.choices.get(index) or _Choice()
        message: dict[str, Any] = {"role": choice.role, "content": "".join(choice.parts) or None}
        if choice.tool_calls:
            message["tool_calls"] = [choice.tool_calls[i] for i in sorted(choice.tool_calls)]
        if choice.refusal:
            message["refusal"] = "".join(choice.refusal)
        return message

    def chat_result(self, *, model: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
        """The non-streamed `chat.completion` object equivalent to the stream."""
        choices = []
        for index in sorted(self.choices) or [0]:
            choice = self.choices.get(index) or _Choice()
            item: dict[str, Any] = {
                "index": index,
                "message": self.message(index),
                "finish_reason": choice.finish_reason,
                "logprobs": {"content": choice.logprobs} if choice.logprobs else None,
            }
            choices.append(item)
        return {
            "id": self.id or "chatcmpl-playground",
            "object": "chat.completion",
            "created": self.created or int(time.time()),
            "model": self.model or model,
            "system_fingerprint": self.system_fingerprint,
            "choices": choices,
            "usage": usage or self.usage,
        }

    def completion_result(self, *, model: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
        choices = []
        for index in sorted(self.choices) or [0]:
            choice = self.choices.get(index) or _Choice()
            logprobs = None
            if choice.logprobs:
                logprobs = {
                    "tokens": [lp["token"] for lp in choice.logprobs],
                    "token_logprobs": [lp["logprob"] for lp in choice.logprobs],
                    "top_logprobs": [{t["token"]: t["logprob"] for t in lp.get("top_logprobs") or []} for lp in choice.logprobs],
                }
            choices.append({"index": index, "text": "".join(choice.parts), "finish_reason": choice.finish_reason, "logprobs": logprobs})
        return {
            "id": self.id or "cmpl-playground",
            "object": "text_completion",
            "created": self.created or int(time.time()),
            "model": self.model or model,
            "choices": choices,
            "usage": usage or self.usage,
        }

    def output(self) -> dict[str, Any]:
        """What a Run stores: every choice with its text, tool calls, logprobs and finish."""
        return {
            "choices": [
                {
                    "index": i,
                    "text": "".join(c.parts),
                    "role": c.role,
                    "tool_calls": [c.tool_calls[k] for k in sorted(c.tool_calls)],
                    "logprobs": c.logprobs,
                    "finish_reason": c.finish_reason,
                    **({"refusal": "".join(c.refusal)} if c.refusal else {}),
                }
                for i, c in sorted(self.choices.items())
            ],
            "id": self.id,
        }
