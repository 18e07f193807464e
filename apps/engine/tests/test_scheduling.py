"""Per-model scheduling on the real chat model: queue order, queue positions, Stop."""
from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async

from apps.engine import extensions
from apps.engine.provider import LocalEngineProvider
from apps.engine.scheduler import scheduler
from apps.proxy import services
from apps.proxy.models import Provider, Run, RunStatus
from apps.proxy.providers.base import QueuePosition

MODEL = "smollm2-135m-instruct"
LONG = {"model": MODEL, "messages": [{"role": "user", "content": "Count from 1 to 500, one number per line."}], "max_tokens": 400, "temperature": 0}


class _Row:
    team_id = 0
    name = "Local engine"


@pytest.fixture
def engine():
    return LocalEngineProvider(_Row())


def running(model=MODEL) -> int:
    return scheduler.stats().get(model, {}).get("running", 0)


def queued(model=MODEL) -> int:
    return scheduler.stats().get(model, {}).get("queued", 0)


async def wait_until(predicate, timeout=30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


async def test_two_generations_on_one_model_run_one_after_another(engine, settings):
    settings.ENGINE_CONCURRENCY_PER_MODEL = 1
    timeline: list[tuple[str, str, float]] = []

    async def consume(name, request):
        async for event in engine.chat(request):
            kind = "queue" if isinstance(event, QueuePosition) else ("usage" if not event["choices"] else "chunk")
            timeline.append((name, kind if kind != "queue" else f"queue:{event.position}", time.perf_counter()))

    request = {**LONG, "max_tokens": 12}
    first = asyncio.create_task(consume("a", request))
    await wait_until(lambda: any(n == "a" and k == "chunk" for n, k, _ in timeline))
    second = asyncio.create_task(consume("b", request))
    await wait_until(lambda: any(n == "b" for n, _, _ in timeline))
    assert (running(), queued()) == (1, 1)
    await asyncio.gather(first, second)

    b_events = [k for n, k, _ in timeline if n == "b"]
    assert b_events[0] == "queue:1"  # one generation ahead of it
    a_end = max(t for n, k, t in timeline if n == "a")
    b_first_chunk = min(t for n, k, t in timeline if n == "b" and k == "chunk")
    assert b_first_chunk > a_end  # b started only when a had finished
    assert (running(), queued()) == (0, 0)


async def test_queue_positions_count_down(engine, settings):
    settings.ENGINE_CONCURRENCY_PER_MODEL = 1
    request = {**LONG, "max_tokens": 6}
    seen: dict[str, list[int]] = {"b": [], "c": []}

    async def consume(name):
        async for event in engine.chat(request):
            if isinstance(event, QueuePosition) and name in seen:
                seen[name].append(event.position)

    first = asyncio.create_task(consume("a"))
    await wait_until(lambda: running() == 1)
    second = asyncio.create_task(consume("b"))
    await wait_until(lambda: queued() == 1)
    third = asyncio.create_task(consume("c"))
    await asyncio.gather(first, second, third)
    assert seen["b"] == [1]
    assert seen["c"][0] == 2 and seen["c"][-1] == 1


async def test_closing_the_stream_stops_generation_and_frees_the_slot(engine, settings):
    settings.ENGINE_CONCURRENCY_PER_MODEL = 1
    stream = engine.chat(LONG)
    arrivals = []
    async for event in stream:
        if isinstance(event, dict) and event["choices"] and event["choices"][0]["delta"].get("content"):
            arrivals.append(time.perf_counter())
            if len(arrivals) == 6:
                break
    assert running() == 1
    per_token = (arrivals[-1] - arrivals[0]) / (len(arrivals) - 1)
    stopped_at = time.perf_counter()
    await stream.aclose()
    await wait_until(lambda: running() == 0, timeout=5)
    latency = time.perf_counter() - stopped_at
    # The flag is checked between tokens: the slot is free within about one token's time
    # (15-40 ms on an idle 2-core machine, so well under 0.2 s; more when the CPU is shared).
    assert latency < max(0.2, 3 * per_token), f"stop took {latency:.3f} s, a token takes {per_token:.3f} s"
    # The next request gets the model at once: no queue position.
    events = [e async for e in engine.chat({**LONG, "max_tokens": 2})]
    assert not any(isinstance(e, QueuePosition) for e in events)


async def test_a_waiting_request_that_leaves_frees_its_place(engine, settings):
    settings.ENGINE_CONCURRENCY_PER_MODEL = 1
    busy = engine.chat(LONG)
    await busy.__anext__()
    await wait_until(lambda: running() == 1)
    waiting = engine.chat({**LONG, "max_tokens": 2})
    assert isinstance(await waiting.__anext__(), QueuePosition)
    assert queued() == 1
    await waiting.aclose()
    assert queued() == 0
    await busy.aclose()
    await wait_until(lambda: running() == 0, timeout=5)


@pytest.mark.django_db(transaction=True)
async def test_cancelled_task_keeps_partial_output_and_frees_the_model(team, owner, settings):
    settings.ENGINE_CONCURRENCY_PER_MODEL = 1
    provider = await sync_to_async(Provider.objects.get)(team=team, kind="local")
    stream = await services.stream_start(team=team, user=owner, provider=provider, request=LONG)

    async def consume():
        async for _ in stream:
            pass

    task = asyncio.create_task(consume())
    await wait_until(lambda: len(stream.acc.text()) >= 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: running() == 0, timeout=5)
    run = await sync_to_async(Run.objects.get)(pk=stream.run.pk)
    assert run.status == RunStatus.CANCELLED
    assert len(run.output_text) >= 10 and run.output_text.startswith(stream.acc.text()[:10])


async def test_two_slots_run_two_generations_at_once(engine, settings):
    settings.ENGINE_CONCURRENCY_PER_MODEL = 2
    request = {**LONG, "max_tokens": 4}
    results = await asyncio.gather(*(_events(engine.chat(request)) for _ in range(2)))
    assert not any(isinstance(e, QueuePosition) for events in results for e in events)


async def _events(stream):
    return [e async for e in stream]


# -- extension sources (local fine-tunes) ----------------------------------------------------------

class _EchoSource:
    """A stand-in for another app's source: answers with the last user message."""

    def models(self, team_id):
        return [{"id": "ft:smollm2:echo", "object": "model", "owned_by": "team", "capabilities": ["chat", "streaming"]}] if team_id == 0 else []

    def chat(self, model_id, request):
        async def gen():
            text = request["messages"][-1]["content"]
            yield {"id": "x", "object": "chat.completion.chunk", "model": model_id, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
            yield {"id": "x", "object": "chat.completion.chunk", "model": model_id, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}

        return gen() if model_id == "ft:smollm2:echo" else None


@pytest.fixture
def echo_source():
    source = _EchoSource()
    extensions.register_source(source)
    yield source
    extensions.unregister_source(source)


async def test_extension_models_are_listed_and_routed(engine, echo_source):
    ids = [m["id"] for m in await engine.list_models()]
    assert "ft:smollm2:echo" in ids and MODEL in ids
    events = [e async for e in engine.chat({"model": "ft:smollm2:echo", "messages": [{"role": "user", "content": "ping"}]})]
    assert events[0]["choices"][0]["delta"]["content"] == "ping"
    assert (running("ft:smollm2:echo"), queued("ft:smollm2:echo")) == (0, 0)


async def test_list_models_describes_capabilities(engine):
    models = {m["id"]: m for m in await engine.list_models()}
    assert set(models) >= {"smollm2-135m-instruct", "gemma-3-270m", "multilingual-e5-small", "whisper-tiny.en", "piper-joe-medium"}
    chat = models["smollm2-135m-instruct"]
    assert chat["object"] == "model" and "chat" in chat["capabilities"] and chat["context_length"] == 8192 and chat["description"]
    assert "embeddings" in models["multilingual-e5-small"]["capabilities"]
