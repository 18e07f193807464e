"""Server-sent events from an upstream response: each event's data, as bytes, read to the end.

Why not httpx-sse: the hot path of every stream (DESIGN.md, "Performance targets"). It
decodes every piece to text, splits it into lines in a generator, builds an event object
per event and hands orjson a str; here the bytes are split once and the data goes to
orjson as bytes. And the body is read to its end, after `[DONE]` too: an HTTP/1.1
connection whose body was left unread cannot go back to the pool, so stopping at `[DONE]`
made every request open a new connection (with TLS, a handshake) to the provider.

Lines end in \\n, \\r\\n or \\r (the SSE spec); `data:` lines of one event are joined with
\\n; other fields (event, id, retry) and comments are ignored, as OpenAI-compatible
servers put everything in data.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

DONE = b"[DONE]"
DRAIN_SECONDS = 0.25  # waited for the end of the body after [DONE] before giving up on reusing the connection


async def sse_data(response: httpx.Response) -> AsyncIterator[bytes]:
    """Each event's data, until `[DONE]` or the end of the body (whichever comes first)."""
    pieces = aiter(response.aiter_bytes())
    pending = b""  # an incomplete line from the previous piece
    data: list[bytes] = []
    async for piece in pieces:
        if pending:
            piece = pending + piece
            pending = b""
        lines = piece.splitlines(keepends=True)
        if lines and not lines[-1].endswith(b"\n"):
            pending = lines.pop()  # no line end yet, or a \r whose \n may be in the next piece
        for line in lines:
            line = line.rstrip(b"\r\n")
            if not line:  # blank line: the event is complete
                if data:
                    payload = data[0] if len(data) == 1 else b"\n".join(data)
                    data = []
                    if payload == DONE:
                        await _drain(pieces)
                        return
                    yield payload
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value[:1] == b" " else value)
    # The body ended without the blank line after the last event (or its last line end).
    line = pending.rstrip(b"\r\n")
    if line.startswith(b"data:"):
        value = line[5:]
        data.append(value[1:] if value[:1] == b" " else value)
    if data:
        payload = b"\n".join(data)
        if payload != DONE:
            yield payload


async def _drain(pieces: AsyncIterator[bytes]) -> None:
    """Read what follows [DONE] (normally just the end of the chunked body, in the same
    packet), so the connection can be reused; a server that keeps it open is left to
    the caller's close."""
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in pieces:
                pass
    except (TimeoutError, httpx.HTTPError):
        pass
