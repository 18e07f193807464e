"""The lean HTTP/1.1 transport against a loopback server that writes exact bytes.

The test upstream (tests/upstream.py) drives the transport through every provider test;
here the server is scripted byte by byte, for what a well-behaved server never sends:
chunks split across reads, extensions and trailers, a kept connection closed while idle,
broken framing, and header injection from a provider's settings.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from apps.proxy.wire import LeanTransport


class Scripted:
    """A TCP server on a loopback port: each connection reads one request head (and its
    Content-Length body), then `reply(connection_index, request_bytes, writer)` answers."""

    def __init__(self, reply: Callable) -> None:
        self.reply = reply
        self.connections = 0
        self.requests: list[bytes] = []

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.connections
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                if await self.reply(index, request, writer) == "close":
                    return
        finally:
            writer.close()


async def _get(client: httpx.AsyncClient, url: str, **kwargs) -> tuple[int, list[bytes]]:
    pieces = []
    async with client.stream(kwargs.pop("method", "GET"), url, **kwargs) as response:
        async for piece in response.aiter_raw():
            pieces.append(piece)
    return response.status_code, pieces


def _client(**kwargs) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=LeanTransport(**kwargs), timeout=httpx.Timeout(2.0))


async def test_a_chunked_body_split_anywhere_arrives_whole_and_the_connection_is_reused():
    body = b"".join(b"data: {\"n\": %d}\n\n" % i for i in range(40))
    wire = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(body[i:i + 37]), body[i:i + 37]) for i in range(0, len(body), 37))
    wire += b"0\r\nx-trailer: yes\r\n\r\n"

    async def reply(index, request, writer):
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for at in range(0, len(wire), 7):  # seven bytes at a time: sizes, data and CRLFs split
            writer.write(wire[at:at + 7])
            await writer.drain()
            await asyncio.sleep(0)

    async with Scripted(reply) as server, _client() as client:
        for _ in range(3):
            status, pieces = await _get(client, server.url + "/stream?q=1")
            assert status == 200 and b"".join(pieces) == body
        assert server.connections == 1  # read to its end, each connection went back to the pool
        assert server.requests[0].startswith(b"GET /stream?q=1 HTTP/1.1\r\n")


async def test_content_length_and_close_delimited_bodies():
    async def reply(index, request, writer):
        if b"/length" in request:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhello")
            await writer.drain()
            writer.write(b" world")
            return None
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
        return "close"

    async with Scripted(reply) as server, _client() as client:
        assert b"".join((await _get(client, server.url + "/length"))[1]) == b"hello world"
        assert b"".join((await _get(client, server.url + "/close"))[1]) == b"until the end"
        assert b"".join((await _get(client, server.url + "/length"))[1]) == b"hello world"
        assert server.connections == 2  # the close-delimited reply's connection is not reused


async def test_a_kept_connection_the_server_drops_is_replaced_without_an_error():
    served: dict[int, int] = {}

    async def reply(index, request, writer):
        served[index] = served.get(index, 0) + 1
        if served[index] == 2:  # the keep-alive race: the server closes as the request arrives
            return "close"
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        return None

    async with Scripted(reply) as server, _client() as client:
        for _ in range(3):
            status, pieces = await _get(client, server.url + "/", method="POST", content=b"{}")
            assert (status, b"".join(pieces)) == (200, b"ok")
        assert server.connections == 3 and len(server.requests) == 5  # the 2nd and 3rd each sent twice

    async def once(index, request, writer):
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        return "close"  # ends the connection after one reply, without saying so

    async with Scripted(once) as server, _client() as client:
        for _ in range(3):
            assert b"".join((await _get(client, server.url + "/"))[1]) == b"ok"
            await asyncio.sleep(0.05)  # the close reaches the idle connection: not reused
        assert server.connections == 3 and len(server.requests) == 3


async def test_a_body_cut_short_is_an_error_not_a_shorter_answer():
    async def reply(index, request, writer):
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nwor")
        return "close"

    async with Scripted(reply) as server, _client() as client:
        with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
            await _get(client, server.url + "/")


async def test_broken_framing_is_a_protocol_error():
    replies = {
        b"/size": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"/overrun": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n",
        b"/status": b"HTTP/1.1 OK\r\n\r\n",
        b"/header": b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"/length": b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
    }

    async def reply(index, request, writer):
        writer.write(next(v for k, v in replies.items() if k in request.split(b"\r\n")[0]))
        return "close"

    async with Scripted(reply) as server, _client() as client:
        for path in replies:
            with pytest.raises(httpx.RemoteProtocolError):
                await _get(client, server.url + path.decode())


async def test_no_response_at_all_is_a_protocol_error_and_silence_a_read_timeout():
    async def reply(index, request, writer):
        if b"/silent" in request:
            await asyncio.sleep(1)
        return "close"

    async with Scripted(reply) as server:
        async with _client() as client:
            with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
                await _get(client, server.url + "/gone")
        async with httpx.AsyncClient(transport=LeanTransport(), timeout=httpx.Timeout(2.0, read=0.2)) as client:
            with pytest.raises(httpx.ReadTimeout):
                await _get(client, server.url + "/silent")


async def test_connect_failures_are_connect_errors():
    async with Scripted(lambda *a: None) as server:
        port = server.server.sockets[0].getsockname()[1]
    async with _client() as client:  # the server is gone: refused
        with pytest.raises(httpx.ConnectError):
            await _get(client, f"http://127.0.0.1:{port}/")

        async def plain_http(reader, writer):  # what an HTTP server says to a TLS hello
            writer.write(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n")
            await writer.drain()
            writer.close()

        plain = await asyncio.start_server(plain_http, "127.0.0.1", 0)
        try:
            with pytest.raises(httpx.ConnectError, match="SSL"):  # TLS spoken to a plain-HTTP port
                await _get(client, f"https://127.0.0.1:{plain.sockets[0].getsockname()[1]}/")
        finally:
            plain.close()


async def test_a_header_that_would_split_the_request_is_refused_before_sending():
    async with Scripted(lambda *a: None) as server, _client() as client:
        for headers in ({"x-extra": "a\r\nx-injected: 1"}, {"x bad": "1"}):
            with pytest.raises(httpx.LocalProtocolError, match="Illegal header"):
                await _get(client, server.url + "/", headers=headers)
        assert server.requests == []


async def test_a_streamed_multipart_body_is_sent_whole():
    async def reply(index, request, writer):
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")

    async with Scripted(reply) as server, _client() as client:
        status, _ = await _get(client, server.url + "/upload", method="POST",
                               files={"file": ("a.txt", b"x" * 70_000)}, data={"purpose": "fine-tune"})
        assert status == 200
        sent = server.requests[0]
        assert b'name="purpose"\r\n\r\nfine-tune' in sent and b"x" * 70_000 in sent


async def test_the_proxy_service_honours_an_outbound_proxy_from_the_environment(monkeypatch):
    from apps.proxy import http

    async def proxy(index, request, writer):  # an HTTP proxy is sent the absolute URL
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"data\":[]}")
        await writer.drain()

    async with Scripted(proxy) as server:
        for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.delenv(name, raising=False)
        for name in ("http_proxy", "HTTP_PROXY"):
            monkeypatch.setenv(name, server.url)
        reply = await http.request_json("GET", "http://models.example.invalid/v1/models", provider="Proxied", headers={})
        assert reply == {"data": []}
        assert server.requests[0].startswith(b"GET http://models.example.invalid/v1/models HTTP/1.1\r\n")
