"""The benchmark's table: who is ahead on each figure, and what is said when a side is missing."""
from __future__ import annotations

import json
from pathlib import Path

from bench import fanout, openwebui
from bench.run import HIGHER, LOWER, _ahead, report

FAST = {"ttfc_p50_ms": 1.5, "ttfc_p99_ms": 2.0, "chunks_per_s": 200_000.0, "total_p50_ms": 2.5, "events": 502}


def side(scale: float) -> dict:
    return {"ttfc_p50_ms": 1.5 * scale, "ttfc_p99_ms": 2.0 * scale, "chunks_per_s": 200_000.0 / scale,
            "total_p50_ms": 2.5 * scale, "events": 502}


def results(with_litellm: bool) -> dict:
    seq = {"direct": FAST, "playground": side(5), "playground_cpu_ms_per_chunk": 0.05, "playground_cpu_ms_per_request": 25.0}
    conc = {"streams": 20, "direct": FAST, "playground": side(8), "wall_ms_direct": 50.0, "wall_ms_playground": 600.0,
            "playground_cpu_ms_per_chunk": 0.05}
    lite = {"version": "1.106.0", "error": "pip install litellm[proxy]==1.106.0 took over 600 s"}
    if with_litellm:
        seq.update({"litellm": side(60), "litellm_cpu_ms_per_chunk": 0.7, "litellm_cpu_ms_per_request": 350.0})
        conc.update({"litellm": side(2), "wall_ms_litellm": 9000.0, "litellm_cpu_ms_per_chunk": 0.8})
        lite = {"version": "1.106.0", "install_s": 0.0}
    return {"sequential": seq, "concurrent": conc, "requests": 100, "rounds": 3, "litellm": lite}


def test_ahead_names_the_winner_by_the_direction_that_is_better():
    assert _ahead(10.0, 20.0, LOWER) == "Playground x2.00"
    assert _ahead(30.0, 10.0, LOWER) == "LiteLLM x3.00"
    assert _ahead(15_000.0, 1_500.0, HIGHER) == "Playground x10.00"
    assert _ahead(1.0, 4.0, HIGHER) == "LiteLLM x4.00"
    assert _ahead(1.0, None, LOWER) == ""


def test_the_table_puts_litellm_beside_playground_and_counts_who_is_ahead():
    text = report(results(with_litellm=True))
    assert "LiteLLM 1.106.0" in text
    row = next(line for line in text.splitlines() if line.startswith("chunks/s per stream"))
    assert "Playground x12.00" in row
    # 20 concurrent: LiteLLM was made faster than Playground on the first-chunk and rate rows.
    concurrent_p50 = next(line for line in text.splitlines() if line.startswith("20 concurrent: first chunk p50"))
    assert "LiteLLM x4.00" in concurrent_p50
    summary = text.splitlines()[-1]
    assert summary.startswith("Playground is ahead of LiteLLM on 8 of 11 figures; LiteLLM is ahead on: 20 concurrent")


def test_without_litellm_the_table_says_why():
    text = report(results(with_litellm=False))
    assert "LiteLLM not measured: pip install litellm[proxy]==1.106.0 took over 600 s" in text
    assert "n/a" in next(line for line in text.splitlines() if line.startswith("time to first chunk p50"))
    json.dumps(results(with_litellm=False))  # what goes to latest.json is plain JSON


def test_fanout_report_shows_both_layers_or_why_one_was_skipped():
    ran = {"layer": "in-memory", "streams": 200, "completed": 200, "errors": [], "server_errors": [],
           "gap_p50_ms": 1.0, "gap_p99_ms": 9.5, "gap_max_ms": 12.0, "first_token_p50_ms": 30.0, "first_token_p99_ms": 80.0,
           "stream_p50_ms": 100.0, "wall_ms": 900.0, "frames_per_stream": 6.0, "server_cpu_s": 9.0,
           "server_cpu_ms_per_stream": 45.0, "server_rss_mb_before": 104.0, "server_rss_mb_peak": 140.0}
    lines = fanout.report({"streams": 200, "layers": {"in-memory": ran, "redis": {"skipped": "Redis not reachable"}}})
    assert any(line.startswith("streams completed") and "200/200" in line for line in lines)
    assert any(line.startswith("gap between frames p99") and "9.50" in line for line in lines)
    assert "redis: skipped: Redis not reachable" in lines


def test_openwebui_report_carries_the_reason():
    (line,) = [x for x in openwebui.report({"version": "0.12.4", "reason": "not installed: too big"}) if x]
    assert line == "Open WebUI 0.12.4: not installed: too big."


def test_the_litellm_virtualenv_is_not_committed():
    ignored = (Path(__file__).resolve().parents[2] / ".gitignore").read_text().splitlines()
    assert "/bench/.venv-litellm/" in ignored


def test_the_timeline_times_every_step_of_a_real_v1_stream(capsys):
    # It wraps daphne's, Twisted's and httpx's own functions: if an upgrade renames one,
    # a step goes missing here rather than silently in a later investigation.
    from bench import timeline

    assert timeline.main(["--requests", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    timed = [line.split()[:-2] for line in lines[2:]]
    assert [" ".join(words) for words in timed] == timeline.STEPS
    at = [float(line.split()[-2]) for line in lines[2:]]
    assert at == sorted(at) and at[0] > 0
