"""A scriptable OpenAI-compatible HTTP server on a loopback port, for tests and benchmarks.

The proxy is tested over real HTTP against this server: each test scripts the replies a
path gives (JSON, SSE chunks with delays, 429 with Retry-After, 500, a stall, a connection
dropped mid-stream) and then asserts on what the server saw (`requests`, `disconnects`).

    def test_something(upstream):
        upstream.script("POST /v1/chat/completions", Reply.stream(chat_chunks(["Hel", "lo"])))
        ...
        assert upstream.requests[-1].json["model"] == "gpt-4o-mini"

Paths without a script get sensible defaults (a model list, a streamed echo answer,
deterministic embeddings, a PNG, a WAV) so tests only script what they are about.
"""
from __future__ import annotations

import base64
import io
import json
import math
import select
import socket
import struct
import threading
import time
import wave
import zlib
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

DEFAULT_MODELS = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "dall-e-2", "tts-1", "whisper-1", "gpt-3.5-turbo-instruct"]


@dataclass
class Reply:
    """One scripted reply.

    status/json/body/headers: an ordinary response.
    chunks: an SSE stream; each item a dict (sent as `data: <json>`), or str/bytes sent raw
      as a data line (to test malformed events). `done` appends `data: [DONE]`.
    delay: seconds between chunks; first_delay: before the first chunk.
    drop_after: close the connection abruptly after that many chunks.
    stall_after: stop sending (but keep the connection open) after that many chunks,
      for `stall_seconds`, watching for the client to hang up.
    """

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    chunks: list[Any] | None = None
    done: bool = True
    delay: float = 0.0
    first_delay: float = 0.0
    drop_after: int | None = None
    stall_after: int | None = None
    stall_seconds: float = 30.0

    @classmethod
    def stream(cls, chunks: list[Any], **kwargs) -> Reply:
        return cls(chunks=chunks, **kwargs)

    @classmethod
    def error(cls, status: int, message: str, *, code: str | None = None, headers: dict[str, str] | None = None) -> Reply:
        return cls(status=status, json={"error": {"message": message, "type": "error", "code": code, "param": None}}, headers=headers or {})


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int = 0  # the connection it came on: equal ports, one reused connection

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def multipart(self) -> dict[str, Any]:
        """A multipart/form-data body: {name: text} for fields, {name: (filename, bytes, content type)} for files."""
        from email.parser import BytesParser
        from email.policy import HTTP

        head = b"content-type: " + self.headers.get("content-type", "").encode() + b"\r\n\r\n"
        message = BytesParser(policy=HTTP).parsebytes(head + self.body)
        out: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            out[name] = (filename, payload, part.get_content_type()) if filename is not None else payload.decode()
        return out


def chat_chunks(
    pieces: list[str],
    *,
    model: str = "gpt-4o-mini",
    finish_reason: str | None = "stop",
    usage: dict[str, int] | None = None,
    index: int = 0,
    logprobs: bool = False,
) -> list[dict[str, Any]]:
    """The chunks OpenAI streams for a chat answer made of `pieces`."""
    base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1700000000, "model": model}
    out = [{**base, "choices": [{"index": index, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    for piece in pieces:
        choice: dict[str, Any] = {"index": index, "delta": {"content": piece}, "finish_reason": None}
        if logprobs:
            choice["logprobs"] = {"content": [{"token": piece, "logprob": -0.1, "bytes": list(piece.encode()),
                                               "top_logprobs": [{"token": piece, "logprob": -0.1, "bytes": None}]}]}
        out.append({**base, "choices": [choice]})
    if finish_reason:
        out.append({**base, "choices": [{"index": index, "delta": {}, "finish_reason": finish_reason}]})
    if usage is not None:
        out.append({**base, "choices": [], "usage": usage})
    return out


def completion_chunks(pieces: list[str], *, model: str = "gpt-3.5-turbo-instruct", finish_reason: str = "stop") -> list[dict[str, Any]]:
    base = {"id": "cmpl-test", "object": "text_completion", "created": 1700000000, "model": model}
    out = [{**base, "choices": [{"index": 0, "text": p, "logprobs": None, "finish_reason": None}]} for p in pieces]
    out.append({**base, "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": finish_reason}]})
    return out


def tool_call_chunks(name: str, arguments: str, *, call_id: str = "call_1", model: str = "gpt-4o-mini") -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-tool", "object": "chat.completion.chunk", "created": 1700000000, "model": model}
    half = len(arguments) // 2
    return [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
            {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": arguments[:half]}}]}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": arguments[half:]}}]}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]


def png_bytes(width: int = 2, height: int = 2, rgb: tuple[int, int, int] = (16, 163, 127)) -> bytes:
    """A real PNG (so image code that decodes it works)."""
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def png_rgba(width: int, height: int, alpha: int = 255, rgb: tuple[int, int, int] = (0, 0, 0)) -> bytes:
    """A PNG with an alpha channel (colour type 6): an image mask, for example."""
    raw = b"".join(b"\x00" + bytes((*rgb, alpha)) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def gradient_png(width: int = 256, height: int = 256, seed: int = 0) -> bytes:
    """A soft two-colour gradient PNG, so screenshots of image pages show something image-like."""
    palettes = [((255, 170, 120), (110, 90, 220)), ((90, 200, 180), (30, 60, 140)), ((250, 220, 110), (220, 80, 120)),
                ((170, 230, 140), (40, 120, 200))]
    (r1, g1, b1), (r2, g2, b2) = palettes[seed % len(palettes)]
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")
        for x in range(width):
            t = (x / max(width - 1, 1) + y / max(height - 1, 1)) / 2
            glow = max(0.0, 1 - math.hypot(x - width * 0.65, y - height * 0.35) / (width * 0.45)) * 60
            row += bytes(min(255, int(a + (b - a) * t + glow)) for a, b in ((r1, r2), (g1, g2), (b1, b2)))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")


def image_reply(n: int = 1, *, width: int = 256, height: int = 256, revised_prompt: str | None = None, usage: dict[str, Any] | None = None) -> Reply:
    """An images endpoint's answer: `n` base64 PNGs (gradients, one palette each)."""
    data = []
    for i in range(n):
        item: dict[str, Any] = {"b64_json": base64.b64encode(gradient_png(width, height, seed=i)).decode()}
        if revised_prompt:
            item["revised_prompt"] = revised_prompt
        data.append(item)
    body: dict[str, Any] = {"created": 1700000000, "data": data}
    if usage is not None:
        body["usage"] = usage
    return Reply(json=body)


def wav_bytes(seconds: float = 0.5, rate: int = 16000, freq: float = 440.0) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / rate))) for i in range(int(seconds * rate))))
    return buffer.getvalue()


def embedding_for(text: str, dims: int = 8) -> list[float]:
    """Deterministic unit vectors, so similarity tests have stable answers."""
    values = [((hash((text, i)) % 2000) - 1000) / 1000 for i in range(dims)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class Upstream:
    def __init__(self) -> None:
        self.scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self.requests: list[Recorded] = []
        self.disconnects: list[str] = []
        self.models = list(DEFAULT_MODELS)
        self.api_key: str | None = None  # when set, other keys get 401
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"upstream": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI-style base URL (…/v1)."""
        return f"{self.base_url}/v1"

    def start(self) -> Upstream:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script(self, route: str, *replies: Reply) -> None:
        """Queue replies for 'METHOD /path' (or '/path' for any method), used in order."""
        with self._lock:
            self.scripts[route].extend(replies)

    def reset(self) -> None:
        with self._lock:
            self.scripts.clear()
            self.requests.clear()
            self.disconnects.clear()
            self.models = list(DEFAULT_MODELS)
            self.api_key = None

    def requests_to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.split("?")[0] == path]

    def next_reply(self, method: str, path: str) -> Reply | None:
        with self._lock:
            for route in (f"{method} {path}", path):
                queue = self.scripts.get(route)
                if queue:
                    return queue.popleft()
        return None

    def wait_for_disconnect(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.disconnects:
                return True
            time.sleep(0.02)
        return False


class _Handler(BaseHTTPRequestHandler):
    upstream: Upstream
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?")[0]
        self.upstream.requests.append(Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                                               client_port=self.client_address[1]))
        if self.upstream.api_key is not None and self.headers.get("authorization") != f"Bearer {self.upstream.api_key}":
            self._send(Reply.error(401, "Incorrect API key provided.", code="invalid_api_key"))
            return
        reply = self.upstream.next_reply(self.command, path) or self._default(path, body)
        if reply.first_delay:
            time.sleep(reply.first_delay)
        if reply.chunks is not None:
            self._stream(reply, path)
        else:
            self._send(reply)

    do_GET = do_POST = do_DELETE = _handle

    def _send(self, reply: Reply) -> None:
        if reply.body is not None:
            payload, content_type = reply.body, reply.content_type or "application/octet-stream"
        else:
            payload, content_type = json.dumps(reply.json if reply.json is not None else {}).encode(), reply.content_type or "application/json"
        self.send_response(reply.status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(payload)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _stream(self, reply: Reply, path: str) -> None:
        self.send_response(reply.status)
        self.send_header("content-type", reply.content_type or "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("cache-control", "no-cache")
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        try:
            for number, item in enumerate(reply.chunks or []):
                if reply.drop_after is not None and number >= reply.drop_after:
                    self._drop()
                    return
                if reply.stall_after is not None and number >= reply.stall_after:
                    self._stall(reply.stall_seconds, path)
                    return
                if number and reply.delay:
                    time.sleep(reply.delay)
                if isinstance(item, dict):
                    line = b"data: " + json.dumps(item).encode() + b"\n\n"
                else:
                    line = (item if isinstance(item, bytes) else item.encode())
                    if not line.startswith(b"data:") and not line.startswith(b":"):
                        line = b"data: " + line
                    line += b"\n\n"
                self._write_chunk(line)
            if reply.drop_after is not None and reply.drop_after >= len(reply.chunks or []):
                self._drop()
                return
            if reply.stall_after is not None and reply.stall_after >= len(reply.chunks or []):
                self._stall(reply.stall_seconds, path)
                return
            if reply.done:
                self._write_chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.upstream.disconnects.append(path)
            self.close_connection = True

    def _drop(self) -> None:
        """Close the socket mid-stream, without the terminating chunk."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _stall(self, seconds: float, path: str) -> None:
        """Send nothing, keep the connection, and notice if the client hangs up."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if readable:
                try:
                    if self.connection.recv(1, socket.MSG_PEEK) == b"":
                        self.upstream.disconnects.append(path)
                        self.close_connection = True
                        return
                except OSError:
                    self.upstream.disconnects.append(path)
                    self.close_connection = True
                    return
        self.close_connection = True

    # -- defaults ---------------------------------------------------------------------
    def _default(self, path: str, body: bytes) -> Reply:
        data: dict[str, Any] = {}
        if body and self.headers.get("content-type", "").startswith("application/json"):
            data = json.loads(body)
        if path == "/v1/models":
            return Reply(json={"object": "list", "data": [{"id": m, "object": "model", "created": 1700000000, "owned_by": "test"} for m in self.upstream.models]})
        if path == "/v1/chat/completions":
            text_in = ""
            for message in data.get("messages", []):
                content = message.get("content")
                if isinstance(content, str):
                    text_in = content
            pieces = ["Echo: ", *text_in.split(" ")[:20]] if text_in else ["Hello", " from", " upstream"]
            pieces = [p if i < 2 else " " + p for i, p in enumerate(pieces)]
            usage = {"prompt_tokens": 10, "completion_tokens": len(pieces), "total_tokens": 10 + len(pieces)}
            if data.get("stream"):
                include = (data.get("stream_options") or {}).get("include_usage")
                return Reply.stream(chat_chunks(pieces, model=data.get("model", "gpt-4o-mini"), usage=usage if include else None))
            return Reply(json={"id": "chatcmpl-test", "object": "chat.completion", "created": 1700000000, "model": data.get("model"),
                               "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(pieces)}, "finish_reason": "stop"}],
                               "usage": usage})
        if path == "/v1/completions":
            pieces = [" once", " upon", " a", " time"]
            if data.get("stream"):
                return Reply.stream(completion_chunks(pieces, model=data.get("model", "gpt-3.5-turbo-instruct")))
            return Reply(json={"id": "cmpl-test", "object": "text_completion", "model": data.get("model"),
                               "choices": [{"index": 0, "text": "".join(pieces), "finish_reason": "stop", "logprobs": None}],
                               "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}})
        if path == "/v1/embeddings":
            inputs = data.get("input", [])
            inputs = [inputs] if isinstance(inputs, str) else inputs
            dims = data.get("dimensions") or 8
            return Reply(json={"object": "list", "model": data.get("model"),
                               "data": [{"object": "embedding", "index": i, "embedding": embedding_for(str(t), dims)} for i, t in enumerate(inputs)],
                               "usage": {"prompt_tokens": sum(len(str(t).split()) for t in inputs), "total_tokens": sum(len(str(t).split()) for t in inputs)}})
        if path in ("/v1/images/generations", "/v1/images/edits", "/v1/images/variations"):
            n = int(data.get("n") or 1) if data else 1
            b64 = base64.b64encode(png_bytes()).decode()
            return Reply(json={"created": 1700000000, "data": [{"b64_json": b64, "revised_prompt": data.get("prompt")} for _ in range(n)]})
        if path == "/v1/audio/speech":
            return Reply(body=wav_bytes(), content_type="audio/wav")
        if path in ("/v1/audio/transcriptions", "/v1/audio/translations"):
            return Reply(json={"text": "hello from upstream"})
        return Reply.error(404, f"Unknown path {path} on the test upstream.", code="not_found")


@pytest.fixture(scope="session")
def _upstream_server():
    server = Upstream().start()
    yield server
    server.stop()


@pytest.fixture
def upstream(_upstream_server):
    """The test upstream, reset for each test."""
    _upstream_server.reset()
    yield _upstream_server
    _upstream_server.reset()
