"""The benchmark helpers run and report sane shapes (no timing is asserted)."""
from __future__ import annotations

from apps.engine import bench


def test_raw_llama_reports_tokens_and_ttft():
    result = bench.raw_llama(max_tokens=8)
    assert 0 < result["tokens"] <= 8 and result["ttft_s"] > 0


async def test_engine_stream_and_stop_latency():
    result = await bench.engine_stream(max_tokens=8)
    assert 0 < result["tokens"] <= 8 and result["ttft_s"] > 0
    stop = await bench.stop_latency(after_tokens=2)
    assert stop["stop_to_free_s"] >= 0


def test_rss_with_all_models():
    result = bench.rss_with_all_models()
    assert result["rss_all_models_mb"] > 100
    assert all(isinstance(v, float) for v in result["load_seconds"].values())
