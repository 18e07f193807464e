"""A minimal OpenAI-compatible streaming server on raw asyncio, as fast as Python gets.

The baseline for the proxy-overhead benchmark must not be the bottleneck, so this is not
tests/upstream.py (ThreadingHTTPServer, a thread and a json.dumps per chunk): every chunk
is serialised once at start-up and a stream is 500 transport writes.

    python -m bench.fast_upstream --chunks 500     # prints "PORT <n>" and serves
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys

MODEL = "bench-model"


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def stream_chunks(count: int) -> list[bytes]:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": MODEL,
            "system_fingerprint": None}
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}]}]
    events += [{**base, "choices": [{"index": 0, "delta": {"content": f" tok{i}"}, "logprobs": None, "finish_reason": None}]}
               for i in range(count - 1)]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]})
    events.append({**base, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": count, "total_tokens": 12 + count}})
    out = [_chunked(b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n") for e in events]
    out.append(_chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n")
    return out


class Server(asyncio.Protocol):
    chunks: list[bytes] = []
    models = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "bench"}]}).encode()

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buffer) < head_end + 4 + length:
                return
            self.buffer = self.buffer[head_end + 4 + length:]
            method, path, _ = head.split(" ", 2)
            self.respond(method, path.split("?")[0])

    def respond(self, method: str, path: str) -> None:
        write = self.transport.write
        if method == "GET" and path.endswith("/models"):
            write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(self.models), self.models))
            return
        if method == "POST" and path.endswith("/chat/completions"):
            write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n")
            for chunk in self.chunks:  # one write per event: the stream as a server produces it
                write(chunk)
            return
        body = b'{"error":{"message":"not found","type":"invalid_request_error","param":null,"code":"not_found"}}'
        write(b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))


async def serve(port: int, chunks: int) -> None:
    Server.chunks = stream_chunks(chunks)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Server, "127.0.0.1", port)
    print("PORT", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--chunks", type=int, default=500)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port, args.chunks))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
