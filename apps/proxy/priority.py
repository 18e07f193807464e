"""First tokens first: streams still waiting for their first chunk go ahead of streams
already flowing.

One event loop serves every stream of a server process. When it is saturated (a burst of
fast streams), a request that has just arrived needs several turns of the loop before its
first chunk (connect upstream, send, read the headers), and every turn waits for each
flowing stream's batch of chunks: with 20 streams of a fast upstream at once, their first
chunks all arrived after about 700 ms. People wait for the first token; a few more
milliseconds on a stream that is already flowing go unnoticed. So between batches a flowing
stream steps aside while any stream is starting: until none is, or PAUSE seconds at most,
so that a stream waiting on a slow model's first token costs the flowing ones little (a
real model yields far fewer chunks in PAUSE than one batch carries).

Two rules, both per event loop:
- Flowing streams take turns: a stream handles its chunks holding the loop's lane (one
  batch at most per turn, then the next stream in line), so one turn of the loop carries
  one batch of flow work rather than one batch of every flowing stream.
- Starting streams go first: between batches, the lane holder steps aside while any
  stream is starting, until none is or PAUSE seconds at most.

    with priority.starting():            # around the wait for the first chunk
        first = await anext(events)
    ...
    lane = priority.Lane()               # a flowing stream
    await lane.enter()                   # before handling chunks that are here
    lane.leave()                         # before waiting for the next ones, or after a batch
    await priority.step_aside()          # after a batch, before entering again
"""
from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterator

PAUSE = 0.01  # seconds a flowing stream waits at most per batch while others start


class _LoopState:
    __slots__ = ("starting", "waiters", "lane")

    def __init__(self) -> None:
        self.starting = 0
        self.waiters: list[asyncio.Future] = []
        self.lane = asyncio.Lock()  # FIFO: a stream that leaves and enters again queues behind the others


_states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()


def _state() -> _LoopState:
    loop = asyncio.get_running_loop()
    state = _states.get(loop)
    if state is None:
        state = _states[loop] = _LoopState()
    return state


@contextlib.contextmanager
def starting() -> Iterator[None]:
    """Mark the current stream as starting for the duration of the block."""
    state = _state()
    state.starting += 1
    try:
        yield
    finally:
        state.starting -= 1
        if not state.starting:
            waiters, state.waiters = state.waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)


async def step_aside() -> None:
    """Between batches of a flowing stream: let starting streams run first (bounded)."""
    state = _state()
    if not state.starting:
        return
    waiter = asyncio.get_running_loop().create_future()
    state.waiters.append(waiter)
    try:
        await asyncio.wait_for(waiter, PAUSE)
    except TimeoutError:
        pass
    finally:
        with contextlib.suppress(ValueError):
            state.waiters.remove(waiter)


class Lane:
    """One flowing stream's hold on its loop's lane (enter/leave are idempotent)."""

    __slots__ = ("_lock", "held")

    def __init__(self) -> None:
        self._lock = _state().lane
        self.held = False

    async def enter(self) -> None:
        if not self.held:
            await self._lock.acquire()
            self.held = True

    def leave(self) -> None:
        if self.held:
            self.held = False
            self._lock.release()


def starting_now() -> int:
    """How many streams of this loop are waiting for their first chunk (for tests)."""
    return _state().starting
