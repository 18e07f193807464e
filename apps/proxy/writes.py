"""Let what was just sent to a client leave the server before more work is done.

daphne runs on Twisted's asyncio reactor, where a transport write only buffers the bytes
and registers the socket with the event loop's selector; they go out when the loop next
polls it. A stream whose next chunks are already buffered (they came in the same read
from upstream) goes on parsing and relaying without suspending, so the frame or chunk it
just sent waits behind all of them: measured 2-3 ms on the chat page's first token and
about 1 ms on /v1's first chunk, with the bench's upstream sending 500 chunks at once.

Two loop turns are what it takes: after the first the writer's callback is queued behind
this task, after the second it has run. Call this after a write whose latency matters
(the first chunk, a page's frame: at most ~40 a second), never per chunk.
"""
from __future__ import annotations

import asyncio


async def let_writes_out() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)
