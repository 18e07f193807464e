"""A lean HTTP/1.1 transport under httpx: the upstream hot path without h11 and httpcore.

Why: every streamed answer passes through here chunk by chunk. httpcore hands each chunk
of a chunked body to h11 (pure Python: a few objects and a state-machine step per chunk)
behind anyio, and its request path costs about 1.5 ms more than a raw socket to the
response head; on the bench's 500-chunk stream that was most of /v1's CPU per chunk and
of its added time to first chunk. Here a response head is parsed once and a chunked body
is split with bytes.find, so each socket read becomes one piece of data however many
chunks it holds.

httpx still does everything above the wire: URLs and query strings, headers, multipart
bodies, content decoding, timeouts' configuration, and proxies (a proxy from the
environment is mounted by httpx on its own transport; this one only talks to origins).
Failures are raised as httpx's exceptions, so apps/proxy/http.py maps them to the same
errors whichever transport sent the request.

Connections are kept per origin (scheme, host, port) for `keepalive_expiry` seconds after
a response is read to its end. A kept connection the server closed meanwhile is found
out on reuse: the request is then sent once more on a new connection, as browsers do,
but only when not one byte of a response came back.

Not here: HTTP/2 (OpenAI-compatible servers speak HTTP/1.1), `Expect: 100-continue`.
"""
from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import AsyncIterator

import httpx

READ_SIZE = 65536
HEAD_LIMIT = 65536  # the longest response head accepted
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\r\n\x00]")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


class _Gone(Exception):
    """The server closed a kept-alive connection before answering: safe to send again."""


class _Connection:
    __slots__ = ("reader", "writer", "expires")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.expires = 0.0

    def usable(self, now: float) -> bool:
        return now < self.expires and not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


def _timeout(request: httpx.Request, name: str) -> float | None:
    return (request.extensions.get("timeout") or {}).get(name)


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 to origins over asyncio streams, with a keep-alive pool per origin."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, max_idle_per_origin: int = 50,
                 keepalive_expiry: float = 30.0) -> None:
        self._ssl_context = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._max_idle = max_idle_per_origin
        self._expiry = keepalive_expiry

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:  # httpx's own default: certifi's roots, SSL_CERT_FILE/DIR honoured
            self._ssl_context = httpx.create_ssl_context()
            self._ssl_context.set_alpn_protocols(["http/1.1"])
        return self._ssl_context

    # -- the request ----------------------------------------------------------------------
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{url.scheme}://'.", request=request)
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        head = _request_head(request)
        try:
            body = request.content  # bytes bodies are loaded by httpx when the request is built
        except httpx.RequestNotRead:
            body = None  # a streamed body (multipart uploads)
        while True:
            conn, reused = await self._checkout(origin, request)
            try:
                await self._send(conn, request, head, body)
                version, status, reason, headers = await _read_head(conn.reader, request)
                framing, length = _framing(request, status, headers)
                break
            except _Gone:
                conn.close()
                if reused and body is not None:
                    continue
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request) from None
            except BaseException:
                conn.close()
                raise
        keep = version == b"HTTP/1.1" and not any(
            name.lower() == b"connection" and b"close" in value.lower() for name, value in headers)
        stream = _Body(self, origin, conn, request, framing, length, keep)
        return httpx.Response(status, headers=headers, stream=stream,
                              extensions={"http_version": version, "reason_phrase": reason})

    async def _send(self, conn: _Connection, request: httpx.Request, head: bytes, body: bytes | None) -> None:
        writer = conn.writer
        try:
            async with asyncio.timeout(_timeout(request, "write")):
                if body is not None:
                    writer.write(head + body)
                else:
                    writer.write(head)
                    chunked = request.headers.get("transfer-encoding", "").lower() == "chunked"
                    async for part in request.stream:
                        if part:
                            writer.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
                            await writer.drain()
                    if chunked:
                        writer.write(b"0\r\n\r\n")
                await writer.drain()
        except TimeoutError:
            raise httpx.WriteTimeout("Timed out sending the request.", request=request) from None
        except OSError as exc:  # the server closed a kept connection
            raise _Gone() from exc

    # -- the pool -------------------------------------------------------------------------
    async def _checkout(self, origin: tuple[str, str, int], request: httpx.Request) -> tuple[_Connection, bool]:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.usable(now):
                return conn, True
            conn.close()
        scheme, host, port = origin
        tls = scheme == "https"
        try:
            async with asyncio.timeout(_timeout(request, "connect")):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=self._tls() if tls else None, server_hostname=host if tls else None, limit=HEAD_LIMIT)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"Timed out connecting to {host}:{port}.", request=request) from None
        except OSError as exc:  # refused, unreachable, DNS (socket.gaierror), TLS (ssl.SSLError)
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        return _Connection(reader, writer), False

    def _checkin(self, origin: tuple[str, str, int], conn: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= self._max_idle or conn.reader.at_eof():
            conn.close()
            return
        conn.expires = time.monotonic() + self._expiry
        idle.append(conn)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


def _request_head(request: httpx.Request) -> bytes:
    """The request line and headers; a name or value that would split the head is refused
    (a provider's extra headers are typed by people)."""
    lines = [b"%s %s HTTP/1.1\r\n" % (request.method.encode("ascii"), request.url.raw_path)]
    for name, value in request.headers.raw:
        if not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
            raise httpx.LocalProtocolError(f"Illegal header {name[:40]!r}: names are tokens, values one line.",
                                           request=request)
        lines.append(b"%s: %s\r\n" % (name, value))
    lines.append(b"\r\n")
    return b"".join(lines)


async def _read_head(reader: asyncio.StreamReader, request: httpx.Request) -> tuple[bytes, int, bytes, list]:
    """(version, status, reason, headers) of the final response, skipping 1xx ones."""
    while True:
        try:
            async with asyncio.timeout(_timeout(request, "read")):
                raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _Gone() from None
            raise httpx.RemoteProtocolError("Server disconnected in the middle of the response head.",
                                            request=request) from None
        except asyncio.LimitOverrunError:
            raise httpx.RemoteProtocolError(f"Response head longer than {HEAD_LIMIT} bytes.", request=request) from None
        except TimeoutError:
            raise httpx.ReadTimeout("Timed out waiting for the response.", request=request) from None
        except OSError as exc:  # reset by the peer
            raise _Gone() from exc
        lines = raw[:-4].split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        code, _, reason = rest.partition(b" ")
        if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
            raise httpx.RemoteProtocolError(f"Not an HTTP/1.1 response: {lines[0][:60]!r}.", request=request)
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise httpx.RemoteProtocolError(f"Malformed response header {line[:60]!r}.", request=request)
            headers.append((name, value.strip()))
        status = int(code)
        if not 100 <= status < 200:
            return version, status, reason, headers


def _framing(request: httpx.Request, status: int, headers: list[tuple[bytes, bytes]]) -> tuple[str, int]:
    """How the body ends: ("empty"|"chunked"|"length"|"close", length)."""
    if request.method == "HEAD" or status in (204, 304):
        return "empty", 0
    length = None
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"transfer-encoding" and b"chunked" in value.lower():
            return "chunked", 0
        if lowered == b"content-length":
            length = value
    if length is not None:
        if not length.isdigit():
            raise httpx.RemoteProtocolError(f"Malformed Content-Length {length[:30]!r}.", request=request)
        return ("length", int(length)) if int(length) else ("empty", 0)
    return "close", 0


class _Body(httpx.AsyncByteStream):
    """A response body, read as it arrives: one piece per socket read."""

    def __init__(self, transport: LeanTransport, origin: tuple[str, str, int], conn: _Connection,
                 request: httpx.Request, framing: str, length: int, keep: bool) -> None:
        self._transport = transport
        self._origin = origin
        self._conn: _Connection | None = conn
        self._request = request
        self._framing = framing
        self._length = length
        self._keep = keep and framing != "close"
        self._done = framing == "empty"

    async def _read(self) -> bytes:
        try:
            async with asyncio.timeout(_timeout(self._request, "read")):
                return await self._conn.reader.read(READ_SIZE)
        except TimeoutError:
            raise httpx.ReadTimeout("Timed out reading the response.", request=self._request) from None
        except OSError as exc:  # reset by the peer, a TLS failure
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=self._request) from exc

    def _cut(self, what: str) -> httpx.RemoteProtocolError:
        return httpx.RemoteProtocolError(f"peer closed connection without sending complete message body: {what}",
                                         request=self._request)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._done:
            return
        if self._framing == "chunked":
            async for piece in self._chunked():
                yield piece
        elif self._framing == "length":
            left = self._length
            while left:
                data = await self._read()
                if not data:
                    raise self._cut(f"received {self._length - left} bytes, expected {self._length}")
                if len(data) > left:  # more than the body: the connection cannot be trusted again
                    data, self._keep = data[:left], False
                left -= len(data)
                yield data
        else:  # "close": the body is everything until the server closes
            while data := await self._read():
                yield data
        self._done = True

    async def _chunked(self) -> AsyncIterator[bytes]:
        """The data of a chunked body, each socket read's worth joined into one piece."""
        buf, pos = b"", 0
        first = True
        left = 0          # data bytes still to come in the current chunk
        state = "size"    # size -> data -> crlf -> size ...; a 0 size -> trailers
        while True:
            out = []
            while True:
                if state == "data":
                    if pos >= len(buf):
                        break
                    piece = buf[pos:pos + left]
                    out.append(piece)
                    pos += len(piece)
                    left -= len(piece)
                    if left:
                        break
                    state = "crlf"
                elif state == "crlf":
                    if len(buf) - pos < 2:
                        break
                    if buf[pos:pos + 2] != b"\r\n":
                        raise httpx.RemoteProtocolError("Malformed chunked body: a chunk overran its size.",
                                                        request=self._request)
                    pos += 2
                    state = "size"
                else:  # a size line or, after the last chunk, a trailer line
                    end = buf.find(b"\r\n", pos)
                    if end < 0:
                        if len(buf) - pos > 4096:
                            raise httpx.RemoteProtocolError("Malformed chunked body: a line too long.",
                                                            request=self._request)
                        break
                    line, pos = buf[pos:end], end + 2
                    if state == "trailers":
                        if not line:  # the body's end
                            if pos < len(buf):
                                self._keep = False  # bytes after the body: do not reuse
                            if out:
                                yield b"".join(out)
                            return
                        continue
                    size = line.split(b";", 1)[0].strip()
                    if not _HEX.fullmatch(size):
                        raise httpx.RemoteProtocolError(f"Malformed chunk size {line[:30]!r}.", request=self._request)
                    left = int(size, 16)
                    state = "data" if left else "trailers"
                if first and out:  # the first data goes on at once: its latency is the one people see
                    break
            if out:
                yield out[0] if len(out) == 1 else b"".join(out)
                if first:
                    first = False
                    continue  # parse the rest of what was read
            data = await self._read()
            if not data:
                raise self._cut("incomplete chunked read")
            buf, pos = (buf[pos:] + data if pos < len(buf) else data), 0

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._done and self._keep:
            self._transport._checkin(self._origin, conn)
        else:
            conn.close()
