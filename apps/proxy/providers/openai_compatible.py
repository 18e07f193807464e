"""OpenAI and every server that speaks its API (Azure OpenAI, vLLM, Ollama, llama.cpp
server, LM Studio, LocalAI ...): a base URL, a key and optional headers.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from apps.proxy import http
from apps.proxy.errors import ProxyError
from apps.proxy.providers.base import AudioResult, Provider, StreamEvent, Upload
from apps.proxy.redaction import redact
from apps.proxy.sse import sse_data


@dataclass
class OpenAICompatibleProvider(Provider):
    def __post_init__(self) -> None:
        self.kind = "openai_compatible"
        self.label = "OpenAI-compatible"

    # -- plumbing ---------------------------------------------------------------------
    def url(self, path: str) -> str:
        return self.row.base_url.rstrip("/") + "/" + path.lstrip("/")

    def headers(self) -> dict[str, str]:
        headers = {str(k): str(v) for k, v in (self.row.extra_headers or {}).items()}
        key = self.row.get_api_key()
        if key:
            if self.row.auth_style == "api-key":
                headers["api-key"] = key
            else:
                headers["authorization"] = f"Bearer {key}"
        if self.row.organization:
            headers["openai-organization"] = self.row.organization
        if self.row.project:
            headers["openai-project"] = self.row.project
        return headers

    def _redact(self, text: str) -> str:
        """Upstream text shown to people, with this provider's key (if echoed) masked."""
        return redact(text, [self.row.get_api_key()])

    def _kwargs(self) -> dict[str, Any]:
        return {"provider": self.name, "headers": self.headers(), "params": self.row.query_params or None}

    async def _json(self, method: str, path: str, **kwargs) -> Any:
        return await http.request_json(method, self.url(path), **self._kwargs(), **kwargs)

    async def _stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[StreamEvent]:
        """POST with stream=true and yield each SSE data payload, parsed once."""
        url = self.url(path)
        async with http.open_response("POST", url, json=body, **self._kwargs()) as response:
            content_type = response.headers.get("content-type", "")
            if "text/event-stream" not in content_type:
                # Some servers ignore stream=true; take the whole JSON reply as one chunk.
                raw = await response.aread()
                try:
                    data = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    raise ProxyError(
                        f"{self.name} did not answer with a stream or JSON ({self._redact(raw.decode(errors='replace'))[:120]!r}). "
                        "Is the base URL an OpenAI-compatible API (…/v1)?",
                        code="bad_response", status=502,
                    ) from None
                yield _as_chunk(data)
                return
            try:
                async for data in sse_data(response):
                    if not data:
                        continue
                    try:
                        chunk = orjson.loads(data)
                    except orjson.JSONDecodeError:
                        text = data.decode(errors="replace")
                        raise ProxyError(
                            f"{self.name} sent a malformed stream event ({self._redact(text)[:120]!r}); the answer stops here.",
                            code="bad_response", status=502,
                        ) from None
                    if isinstance(chunk, dict) and "error" in chunk and "choices" not in chunk:
                        error = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
                        raise ProxyError(
                            f"{self.name} reported an error mid-stream: {self._redact(str(error.get('message', error)))}",
                            code=str(error.get("code") or "upstream_error"), status=502,
                        )
                    yield chunk
            except httpx.HTTPError as exc:
                raise http.error_from_exception(exc, provider=self.name, url=url) from exc
        # The connection ended without [DONE]: some servers do that; the accumulator
        # decides from finish_reason whether the answer was complete.

    # -- operations ---------------------------------------------------------------------
    async def list_models(self) -> list[dict[str, Any]]:
        data = await self._json("GET", "models")
        items = data.get("data") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ProxyError(
                f"{self.name} answered /models without a model list. Is the base URL an OpenAI-compatible API (…/v1)?",
                code="bad_response", status=502,
            )
        return [m for m in items if isinstance(m, dict) and m.get("id")]

    def chat(self, request: dict[str, Any]) -> AsyncIterator[StreamEvent]:
        body = {**request, "stream": True}
        body.setdefault("stream_options", {"include_usage": True})
        return self._stream("chat/completions", body)

    def completion(self, request: dict[str, Any]) -> AsyncIterator[StreamEvent]:
        body = {**request, "stream": True}
        body.setdefault("stream_options", {"include_usage": True})
        return self._stream("completions", body)

    async def embeddings(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._json("POST", "embeddings", json=request)

    async def speech(self, request: dict[str, Any]) -> AudioResult:
        audio, content_type = await http.request_bytes("POST", self.url("audio/speech"), json=request, **self._kwargs())
        return AudioResult(audio=audio, content_type=content_type, format=request.get("response_format", "mp3"))

    async def voices(self, model: str) -> list[str]:
        # OpenAI has no voices endpoint; these are the documented built-in voices.
        return ["alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"]

    async def transcription(self, upload: Upload, params: dict[str, Any], *, translate: bool = False) -> dict[str, Any] | str:
        path = "audio/translations" if translate else "audio/transcriptions"
        fields = {k: _form_value(v) for k, v in params.items() if v not in (None, "")}
        files = {"file": (upload.filename, upload.content, upload.content_type)}
        fmt = params.get("response_format", "json")
        async with http.open_response("POST", self.url(path), files=files, data=fields, **self._kwargs()) as response:
            body = await response.aread()
        if fmt in ("text", "srt", "vtt"):
            return body.decode(errors="replace")
        return orjson.loads(body)

    async def image_generate(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._json("POST", "images/generations", json=request)

    async def image_edit(self, image: Upload, mask: Upload | None, params: dict[str, Any]) -> dict[str, Any]:
        files = [("image", (image.filename, image.content, image.content_type))]
        if mask is not None:
            files.append(("mask", (mask.filename, mask.content, mask.content_type)))
        fields = {k: _form_value(v) for k, v in params.items() if v not in (None, "")}
        return await self._json("POST", "images/edits", files=files, data=fields)

    async def image_variation(self, image: Upload, params: dict[str, Any]) -> dict[str, Any]:
        files = [("image", (image.filename, image.content, image.content_type))]
        fields = {k: _form_value(v) for k, v in params.items() if v not in (None, "")}
        return await self._json("POST", "images/variations", files=files, data=fields)

    async def file_upload(self, upload: Upload, purpose: str) -> dict[str, Any]:
        files = {"file": (upload.filename, upload.content, upload.content_type)}
        return await self._json("POST", "files", files=files, data={"purpose": purpose})

    async def file_delete(self, file_id: str) -> dict[str, Any]:
        return await self._json("DELETE", f"files/{file_id}")

    async def finetune_create(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._json("POST", "fine_tuning/jobs", json=request)

    async def finetune_retrieve(self, job_id: str) -> dict[str, Any]:
        return await self._json("GET", f"fine_tuning/jobs/{job_id}")

    async def finetune_cancel(self, job_id: str) -> dict[str, Any]:
        return await self._json("POST", f"fine_tuning/jobs/{job_id}/cancel")

    async def finetune_events(self, job_id: str, *, after: str | None = None) -> list[dict[str, Any]]:
        path = f"fine_tuning/jobs/{job_id}/events?limit=100" + (f"&after={after}" if after else "")
        data = await self._json("GET", path)
        return list(data.get("data", []))

    async def finetune_checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        data = await self._json("GET", f"fine_tuning/jobs/{job_id}/checkpoints")
        return list(data.get("data", []))


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return orjson.dumps(value).decode()
    return str(value)


def _as_chunk(data: Any) -> dict[str, Any]:
    """A non-streamed completion turned into the one chunk it is equivalent to."""
    if not isinstance(data, dict) or "choices" not in data:
        raise ProxyError("The upstream answer had no choices.", code="bad_response", status=502)
    choices = []
    for choice in data["choices"]:
        if "message" in choice:
            choices.append({**{k: v for k, v in choice.items() if k != "message"}, "delta": choice["message"]})
        else:
            choices.append(choice)
    return {**data, "choices": choices}
