"""apps.proxy.sse: server-sent events split from the bytes as they arrive, however cut."""
from __future__ import annotations

import httpx
import pytest

from apps.proxy.sse import sse_data


async def _events(pieces: list[bytes]) -> list[bytes]:
    async def body():
        for piece in pieces:
            yield piece

    return [data async for data in sse_data(httpx.Response(200, content=body()))]


async def test_events_until_done():
    assert await _events([b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n']) == [b'{"a":1}', b'{"b":2}']


async def test_pieces_cut_anywhere_even_between_cr_and_lf():
    stream = b'data: {"a":1}\r\n\r\ndata: x\r\ndata: y\r\n\r\ndata: [DONE]\r\n\r\n'
    for cut in range(1, len(stream)):
        assert await _events([stream[:cut], stream[cut:]]) == [b'{"a":1}', b"x\ny"], cut


async def test_one_byte_at_a_time():
    stream = b'data: {"a":1}\n\n: keep-alive comment\n\nevent: message\nid: 7\ndata:{"b":2}\n\n'
    assert await _events([bytes([b]) for b in stream]) == [b'{"a":1}', b'{"b":2}']


async def test_lone_cr_line_ends():
    assert await _events([b"data: a\rdata: b\r\r"]) == [b"a\nb"]


@pytest.mark.parametrize("tail", [b"data: last\n", b"data: last"])
async def test_body_ending_without_the_blank_line(tail):
    assert await _events([b"data: first\n\n", tail]) == [b"first", b"last"]


async def test_nothing_after_done_is_an_event():
    assert await _events([b"data: one\n\ndata: [DONE]\n\n", b"data: after\n\n"]) == [b"one"]


async def test_the_body_is_read_to_its_end_after_done():
    read = []

    async def body():
        for piece in (b"data: one\n\ndata: [DONE]\n\n", b"", b"trailing bytes"):
            read.append(piece)
            yield piece

    response = httpx.Response(200, content=body())
    assert [d async for d in sse_data(response)] == [b"one"]
    assert read[-1] == b"trailing bytes"  # drained, so a real connection could go back to the pool
