"""apps.proxy.priority: streams waiting for their first chunk go ahead of flowing ones."""
from __future__ import annotations

import asyncio
import time

from apps.proxy import priority


async def test_a_flowing_stream_waits_while_another_starts_and_goes_on_when_it_has():
    order = []

    async def starter():
        with priority.starting():
            await asyncio.sleep(0.001)  # waiting for the upstream's first chunk
            order.append("started")

    task = asyncio.create_task(starter())
    await asyncio.sleep(0)  # the starter is now starting
    assert priority.starting_now() == 1
    began = time.perf_counter()
    await priority.step_aside()
    order.append("flowing")
    await task
    assert order == ["started", "flowing"]
    assert time.perf_counter() - began < 1  # woken when the starter was done, not by a timer
    assert priority.starting_now() == 0


async def test_stepping_aside_is_bounded_when_a_start_takes_long(monkeypatch):
    monkeypatch.setattr(priority, "PAUSE", 0.02)
    release = asyncio.Event()

    async def slow_starter():
        with priority.starting():
            await release.wait()  # a slow model: seconds to its first token

    task = asyncio.create_task(slow_starter())
    await asyncio.sleep(0)
    began = time.perf_counter()
    await priority.step_aside()
    assert 0.015 < time.perf_counter() - began < 1  # PAUSE, then the flowing stream goes on
    release.set()
    await task


async def test_nothing_starting_means_no_wait():
    began = time.perf_counter()
    for _ in range(1000):
        await priority.step_aside()
    assert time.perf_counter() - began < 0.5


async def test_flowing_streams_take_turns_in_the_lane():
    turns = []

    async def flow(name):
        lane = priority.Lane()
        for _ in range(3):
            await lane.enter()
            turns.append(name)
            await asyncio.sleep(0)  # handing a batch to the server: others may run, not flow
            lane.leave()
            await asyncio.sleep(0)

    await asyncio.gather(flow("a"), flow("b"))
    assert sorted(turns) == ["a"] * 3 + ["b"] * 3
    assert turns[:2] in (["a", "b"], ["b", "a"])  # alternating, not one stream's batches back to back
    assert all(x != y for x, y in zip(turns, turns[1:]))
