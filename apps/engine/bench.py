"""In-process measurements of the engine, for benchmarks (never timed asserts in tests).

    from apps.engine import bench
    bench.raw_llama(prompt="...", max_tokens=128)      # raw llama-cpp-python, no Playground code
    await bench.engine_stream(prompt="...", max_tokens=128)  # the same through LocalEngineProvider
    bench.rss_with_all_models()                         # VmRSS after loading every local model
    await bench.stop_latency()                          # seconds from closing a stream to a free slot

Both generation paths use the same weights, window, threads, greedy decoding and seed,
and evaluate the prompt from scratch each run, so their tokens/s compare like for like.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from django.conf import settings

from apps.engine import catalog, runtime

logger = logging.getLogger(__name__)

CHAT_MODEL = "smollm2-135m-instruct"
DEFAULT_PROMPT = "Write a short story about a lighthouse keeper."


def _timing(started: float, stamps: list[float], tokens: int) -> dict[str, float]:
    if not stamps:
        return {"ttft_s": float("nan"), "tokens": 0, "tokens_per_s": 0.0, "total_s": time.perf_counter() - started}
    gen_time = stamps[-1] - stamps[0]
    return {
        "ttft_s": stamps[0] - started,
        "tokens": tokens,
        # Decode speed after the first token, as llama.cpp reports it.
        "tokens_per_s": (tokens - 1) / gen_time if gen_time > 0 and tokens > 1 else 0.0,
        "total_s": stamps[-1] - started,
    }


def raw_llama(*, prompt: str = DEFAULT_PROMPT, max_tokens: int = 128, model: str = CHAT_MODEL) -> dict[str, float]:
    """Raw llama-cpp-python (its own create_chat_completion stream) on a separately loaded copy."""
    from llama_cpp import Llama

    path = catalog.get(model).locate()
    threads = max(1, int(settings.ENGINE_THREADS))
    llm = Llama(str(path), n_ctx=catalog.SERVED_CONTEXT, n_threads=threads, n_threads_batch=threads, logits_all=False, verbose=False)
    try:
        stamps: list[float] = []
        started = time.perf_counter()
        for chunk in llm.create_chat_completion(
            messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0, seed=1, stream=True
        ):
            if chunk["choices"] and chunk["choices"][0].get("delta", {}).get("content"):
                stamps.append(time.perf_counter())
        usage_tokens = len(stamps)
        return _timing(started, stamps, usage_tokens)
    finally:
        llm.close()


async def engine_stream(*, prompt: str = DEFAULT_PROMPT, max_tokens: int = 128, model: str = CHAT_MODEL) -> dict[str, float]:
    """The same generation through LocalEngineProvider (scheduler, worker thread, chunk shaping)."""
    from apps.engine.provider import LocalEngineProvider

    class _Row:
        team_id = 0
        name = "Local engine"

    await asyncio.to_thread(runtime.get, model)
    request = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens, "temperature": 0, "seed": 1}
    stamps: list[float] = []
    tokens = 0
    started = time.perf_counter()
    async for event in LocalEngineProvider(_Row()).chat(request):
        if isinstance(event, dict):
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
            elif event["choices"] and event["choices"][0]["delta"].get("content"):
                stamps.append(time.perf_counter())
    return _timing(started, stamps, tokens or len(stamps))


def rss_bytes() -> int | None:
    from apps.engine.selectors import process_rss_bytes

    return process_rss_bytes()


def rss_with_all_models() -> dict[str, Any]:
    """Load every local model that is installed, then read this process's VmRSS."""
    before = rss_bytes()
    loaded = {}
    for model in catalog.LOCAL_MODELS:
        try:
            loaded[model] = round(runtime.warm(model).seconds, 3)
        except Exception as exc:  # a missing package is reported, not fatal to the benchmark
            loaded[model] = f"not loaded: {exc}"
    return {"rss_before_mb": (before or 0) / 2**20, "rss_all_models_mb": (rss_bytes() or 0) / 2**20, "load_seconds": loaded}


async def stop_latency(*, model: str = CHAT_MODEL, after_tokens: int = 5) -> dict[str, float]:
    """Start a long generation, close it after a few tokens, time until the model's slot is free."""
    from apps.engine.provider import LocalEngineProvider
    from apps.engine.scheduler import scheduler

    class _Row:
        team_id = 0
        name = "Local engine"

    request = {"model": model, "messages": [{"role": "user", "content": "Count from 1 to 500."}], "max_tokens": 500, "temperature": 0}
    stream = LocalEngineProvider(_Row()).chat(request)
    seen = 0
    async for event in stream:
        if isinstance(event, dict) and event["choices"] and event["choices"][0]["delta"].get("content"):
            seen += 1
            if seen >= after_tokens:
                break
    closed = time.perf_counter()
    await stream.aclose()
    while scheduler.stats().get(model, {}).get("running", 0):
        await asyncio.sleep(0.001)
    return {"stop_to_free_s": time.perf_counter() - closed}
