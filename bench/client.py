"""A lean SSE client on raw asyncio sockets, so the measuring side costs the same both ways.

It sends one HTTP/1.1 request per connection and reads until `data: [DONE]`, noting when
the first event and the last arrived and how many events there were.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass


@dataclass(slots=True)
class StreamTiming:
    ttfc_ms: float      # request sent -> first `data:` event
    total_ms: float     # request sent -> [DONE]
    events: int         # data events before [DONE]
    stream_ms: float    # first event -> [DONE]

    @property
    def chunks_per_s(self) -> float:
        """Events over the whole stream, request to [DONE]: what a reader of the stream gets.
        (First event to last is no measure when a fast server's stream arrives in one read.)"""
        return self.events / (self.total_ms / 1000)


BODY = json.dumps({"model": "bench-model", "messages": [{"role": "user", "content": "Count to 500."}], "stream": True}).encode()


async def stream_once(host: str, port: int, path: str, token: str | None = None, body: bytes = BODY,
                      keep: list[bytes] | None = None) -> StreamTiming:
    """One streamed request; `keep`, when given, receives the raw bytes read (for parsing after)."""
    reader, writer = await asyncio.open_connection(host, port)
    auth = f"authorization: Bearer {token}\r\n".encode() if token else b""
    request = (b"POST %s HTTP/1.1\r\nhost: %s:%d\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s"
               b"connection: close\r\n\r\n%s") % (path.encode(), host.encode(), port, len(body), auth, body)
    started = time.perf_counter()
    writer.write(request)
    first = None
    events = 0
    carry = b""  # an event marker may be split across two reads
    tail = b""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            rest = await reader.read(2000)
            raise RuntimeError(f"{path} answered {head[:40]!r}: {rest[:300]!r}")
        while True:
            data = await reader.read(65536)
            if not data:
                raise RuntimeError("the stream ended without [DONE]")
            now = time.perf_counter()
            if keep is not None:
                keep.append(data)
            window = carry + data  # carry is 5 bytes: a marker found here ends in `data`
            count = window.count(b"data: ")
            if first is None and count:
                first = now
            events += count
            carry = window[-5:]
            tail = (tail + data)[-40:]
            if b"data: [DONE]" in tail:
                end = now
                events -= 1
                break
    finally:
        writer.close()
    return StreamTiming(ttfc_ms=(first - started) * 1000, total_ms=(end - started) * 1000, events=events,
                        stream_ms=(end - first) * 1000)
