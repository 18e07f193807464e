"""The local engine through /v1 vs raw llama-cpp-python in-process (issue 3's benchmark).

The same chat prompt and settings (greedy, max_tokens, the engine's context and threads)
streamed through Playground's /v1 (daphne, the engine in its process) and straight from
llama_cpp.Llama in this process, one after the other, never at once (2 cores). Then every
local model is used once through /v1 and the server's resident memory is read.
"""
from __future__ import annotations

import json
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

logger = logging.getLogger("bench")

CHAT_MODEL = "smollm2-135m-instruct"
MESSAGES = [{"role": "user", "content": "Write a short story about a lighthouse keeper and a storm."}]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _timing(starts: float, stamps: list[float]) -> dict[str, float]:
    tokens = len(stamps)
    ttft = (stamps[0] - starts) * 1000 if stamps else float("nan")
    span = stamps[-1] - stamps[0] if tokens > 1 else 0
    return {"ttft_ms": ttft, "tokens": tokens, "tokens_per_s": (tokens - 1) / span if span > 0 else float("nan")}


def through_v1(url: str, token: str, max_tokens: int) -> dict[str, float]:
    body = {"model": CHAT_MODEL, "messages": MESSAGES, "max_tokens": max_tokens, "temperature": 0, "seed": 1, "stream": True}
    stamps: list[float] = []
    started = time.perf_counter()
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {token}"},
                      timeout=300) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices") and chunk["choices"][0].get("delta", {}).get("content"):
                stamps.append(time.perf_counter())
    return _timing(started, stamps)


class RawLlama:
    """SmolLM2 loaded here the way apps.engine.runtime loads it."""

    def __init__(self) -> None:
        from llama_cpp import Llama

        from apps.engine import catalog  # no Django needed: it only finds the weights

        path = catalog.get(CHAT_MODEL).locate()
        # The server's setting (playground/settings.py ENGINE_THREADS), same default.
        threads = max(1, int(os.environ.get("ENGINE_THREADS", str(os.cpu_count() or 2))))
        self.llm = Llama(str(path), n_ctx=catalog.SERVED_CONTEXT, n_threads=threads, n_threads_batch=threads,
                         logits_all=False, verbose=False)

    def run(self, max_tokens: int) -> dict[str, float]:
        stamps: list[float] = []
        self.llm.reset()  # no reuse of the previous run's prompt from the KV cache: the prompt is evaluated each time
        started = time.perf_counter()
        for chunk in self.llm.create_chat_completion(messages=MESSAGES, max_tokens=max_tokens, temperature=0, seed=1, stream=True):
            if chunk["choices"] and chunk["choices"][0].get("delta", {}).get("content"):
                stamps.append(time.perf_counter())
        return _timing(started, stamps)


def _warm_all(url: str, token: str) -> dict[str, Any]:
    """Use every local model once through /v1, so all are loaded."""
    headers = {"authorization": f"Bearer {token}"}
    done: dict[str, Any] = {}
    with httpx.Client(base_url=f"{url}/v1", headers=headers, timeout=300) as http:
        steps = [
            ("embeddings", lambda: http.post("/embeddings", json={"model": "multilingual-e5-small", "input": "warm up"})),
            ("completions", lambda: http.post("/completions", json={"model": "gemma-3-270m", "prompt": "Hello", "max_tokens": 4})),
        ]
        for name, call in steps:
            done[name] = call().status_code
        speech = http.post("/audio/speech", json={"model": "piper-joe-medium", "input": "Warming up the models.", "voice": "joe",
                                                  "response_format": "wav"})
        done["speech"] = speech.status_code
        if speech.status_code == 200:
            done["transcriptions"] = http.post("/audio/transcriptions", data={"model": "whisper-tiny.en"},
                                               files={"file": ("warm.wav", speech.content, "audio/wav")}).status_code
    return done


def measure_engine(url: str, token: str, server_pid: int, *, runs: int, max_tokens: int) -> dict[str, Any]:
    logger.info("local engine: %d streams of %d tokens each way ...", runs, max_tokens)
    through_v1(url, token, 8)  # loads the model in the server
    raw = RawLlama()
    raw.run(8)
    v1_runs, raw_runs = [], []
    for _ in range(runs):  # alternating, so machine load hits both alike
        v1_runs.append(through_v1(url, token, max_tokens))
        raw_runs.append(raw.run(max_tokens))
    del raw
    warmed = _warm_all(url, token)

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    return {
        "model": CHAT_MODEL,
        "max_tokens": max_tokens,
        "runs": runs,
        "v1": {"ttft_ms": med(v1_runs, "ttft_ms"), "tokens_per_s": med(v1_runs, "tokens_per_s"), "tokens": med(v1_runs, "tokens")},
        "raw": {"ttft_ms": med(raw_runs, "ttft_ms"), "tokens_per_s": med(raw_runs, "tokens_per_s"), "tokens": med(raw_runs, "tokens")},
        "server_rss_mb_all_models": _rss_mb(server_pid),
        "warmed": warmed,
    }


def report(engine: dict[str, Any]) -> list[str]:
    v1, raw = engine["v1"], engine["raw"]
    ratio = v1["tokens_per_s"] / raw["tokens_per_s"] if raw["tokens_per_s"] else float("nan")
    verdict = "ok" if ratio >= 0.9 else "MISS"
    return [
        "",
        f"Local engine ({engine['model']}, greedy, {engine['max_tokens']} tokens, median of {engine['runs']}): "
        "/v1 streaming vs llama-cpp-python in-process",
        f"{'figure':<34} {'in-process':>11} {'through /v1':>13} {'ratio':>16} {'target':>12}",
        "-" * 92,
        f"{'tokens/s':<34} {raw['tokens_per_s']:>11.1f} {v1['tokens_per_s']:>13.1f} {'x%.2f' % ratio:>16} {'>= x0.90':>12} {verdict:>6}",
        f"{'time to first token (ms)':<34} {raw['ttft_ms']:>11.1f} {v1['ttft_ms']:>13.1f} "
        f"{'+%.1f ms' % (v1['ttft_ms'] - raw['ttft_ms']):>16}",
        f"{'server RSS, all models loaded (MB)':<34} {'':>11} {engine['server_rss_mb_all_models']:>13.0f}"
        f"   (models used once: {', '.join(f'{k} {v}' for k, v in engine['warmed'].items())})",
    ]
