"""The proxy-overhead benchmark (issue 8, DESIGN.md "Performance targets").

The same streaming chat request (a fast upstream sending 500 chunks as fast as it can)
is read directly and through Playground's /v1 (daphne in a subprocess on the embedded
default: SQLite, in-memory layers), in the same run on this machine:
- time to first chunk p50/p99, one stream at a time;
- chunks/s per stream;
- CPU per chunk of the Playground server process (from /proc);
- 20 concurrent streams: time to first chunk p50/p99 and chunks/s per stream.
The same figures are measured through LiteLLM's proxy (bench/litellm_proxy.py: its own
virtualenv, the same upstream), interleaved with the other two so the machine's noise hits
all three alike. Then: 200 chat websockets at once through one daphne process, in-memory
and Redis (bench/fanout.py); the local engine through /v1 vs in-process (bench/engine.py);
whether Open WebUI could be installed here (bench/openwebui.py). One table is printed and
the numbers are written to bench/results/latest.json. `--quick` scales the counts down.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.client import StreamTiming, stream_once

logger = logging.getLogger("bench")
ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"added_ttfc_p50_ms": 2.0, "chunks_per_s": 10_000, "cpu_ms_per_chunk": 0.07, "added_ttfc_concurrent_ms": 50.0}
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Waited after each request, before the next side's: a proxy's work after a stream ends
# (LiteLLM's logging callbacks, Playground's Run row) is charged to its own CPU figure,
# not to the latency of whichever side is measured next on the same two cores. Without it
# LiteLLM's after-work landed in the direct reads (p50 1.2 -> 2.4 ms), which made every
# proxy's added time look smaller. It also means each request finds its server idle, as
# a real one mostly does: Playground's first chunk is ~2 ms slower after 30 ms idle than
# back to back (BENCH_SETTLE=0 measures back to back, for comparison).
SETTLE_SECONDS = float(os.environ.get("BENCH_SETTLE", "0.03"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


class Servers:
    """The fast upstream and Playground under daphne, each in its own process."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.litellm = None  # a started bench.litellm_proxy.LiteLLM, when it installed and started
        self.procs: list[subprocess.Popen] = []
        self.var = Path(tempfile.mkdtemp(prefix="playground-bench-"))

    def __enter__(self) -> Servers:
        upstream = subprocess.Popen([sys.executable, "-m", "bench.fast_upstream", "--chunks", str(self.chunks)],
                                    cwd=ROOT, stdout=subprocess.PIPE, text=True)
        self.procs.append(upstream)
        self.upstream_port = int(upstream.stdout.readline().split()[1])
        self.upstream_pid = upstream.pid
        env = {**os.environ, "PLAYGROUND_VAR_DIR": str(self.var), "V1_RATE_LIMIT": "0", "LOG_LEVEL": "WARNING",
               "DJANGO_SETTINGS_MODULE": "playground.settings"}
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        self.token = subprocess.run(
            [sys.executable, "-m", "bench.setup_team", f"http://127.0.0.1:{self.upstream_port}/v1"],
            cwd=ROOT, env=env, check=True, capture_output=True, text=True,
        ).stdout.strip().splitlines()[-1]
        self.port = _free_port()
        server = subprocess.Popen(self.server_command(),
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.procs.append(server)
        self.server_pid = server.pid
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"daphne did not start: {server.stderr.read()[-2000:] if server.stderr else ''}") from None
                time.sleep(0.1)
        return self

    def server_command(self) -> list[str]:
        daphne = shutil.which("daphne", path=str(Path(sys.executable).parent)) or "daphne"
        return [daphne, "-b", "127.0.0.1", "-p", str(self.port), "playground.asgi:application"]

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.var, ignore_errors=True)

    async def direct(self) -> StreamTiming:
        return await stream_once("127.0.0.1", self.upstream_port, "/v1/chat/completions")

    async def proxied(self) -> StreamTiming:
        return await stream_once("127.0.0.1", self.port, "/v1/chat/completions", self.token)

    async def via_litellm(self) -> StreamTiming:
        from bench.litellm_proxy import MASTER_KEY

        return await stream_once("127.0.0.1", self.litellm.port, "/v1/chat/completions", MASTER_KEY)


def _summary(timings: list[StreamTiming]) -> dict[str, float]:
    return {
        "ttfc_p50_ms": _pct([t.ttfc_ms for t in timings], 50),
        "ttfc_p99_ms": _pct([t.ttfc_ms for t in timings], 99),
        "chunks_per_s": statistics.median(t.chunks_per_s for t in timings),
        "total_p50_ms": _pct([t.total_ms for t in timings], 50),
        "events": timings[0].events,
    }


async def measure(servers: Servers, *, requests: int, concurrency: int, rounds: int) -> dict:
    """Direct, Playground and (when running) LiteLLM, interleaved request by request."""
    sides = {"direct": (servers.direct, None), "playground": (servers.proxied, servers.server_pid)}
    if servers.litellm is not None:
        sides["litellm"] = (servers.via_litellm, servers.litellm.pid)
    for _ in range(5):  # warm up: connections, model list cache, first imports
        for call, _pid in sides.values():
            await call()
    seq: dict[str, list[StreamTiming]] = {name: [] for name in sides}
    cpu = {name: 0.0 for name in sides}
    for _ in range(requests):  # interleaved, so load from elsewhere hits every side alike
        for name, (call, pid) in sides.items():
            before = _cpu_seconds(pid) if pid else 0.0
            seq[name].append(await call())
            await asyncio.sleep(SETTLE_SECONDS)
            if pid:
                cpu[name] += _cpu_seconds(pid) - before
    conc: dict[str, list[StreamTiming]] = {name: [] for name in sides}
    wall: dict[str, list[float]] = {name: [] for name in sides}
    conc_cpu = {name: 0.0 for name in sides}
    for _ in range(rounds):
        for name, (call, pid) in sides.items():
            before = _cpu_seconds(pid) if pid else 0.0
            started = time.perf_counter()
            conc[name] += await asyncio.gather(*(call() for _ in range(concurrency)))
            wall[name].append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(SETTLE_SECONDS)
            if pid:
                conc_cpu[name] += _cpu_seconds(pid) - before
    out = {
        "sequential": {name: _summary(timings) for name, timings in seq.items()},
        "concurrent": {"streams": concurrency, **{name: _summary(timings) for name, timings in conc.items()}},
    }
    for name, (_call, pid) in sides.items():
        out["concurrent"][f"wall_ms_{name}"] = statistics.median(wall[name])
        if pid:
            out["sequential"][f"{name}_cpu_ms_per_chunk"] = cpu[name] * 1000 / sum(t.events for t in seq[name])
            out["sequential"][f"{name}_cpu_ms_per_request"] = cpu[name] * 1000 / len(seq[name])
            out["concurrent"][f"{name}_cpu_ms_per_chunk"] = conc_cpu[name] * 1000 / sum(t.events for t in conc[name])
    return out


LOWER, HIGHER = "lower", "higher"


def _ahead(ours: float | None, theirs: float | None, better: str) -> str:
    """Who is ahead on one figure, and by how much."""
    if ours is None or theirs is None:
        return ""
    if ours == theirs:
        return "tie"
    if better == LOWER:
        winner, factor = ("Playground", theirs / ours) if ours < theirs else ("LiteLLM", ours / theirs)
    else:
        winner, factor = ("Playground", ours / theirs) if ours > theirs else ("LiteLLM", theirs / ours)
    return f"{winner} x{factor:.2f}" if factor < 100 else f"{winner} x{factor:.0f}"


def _vs(value: float | None, direct: float | None, better: str) -> str:
    if value is None or direct is None:
        return ""
    if better == LOWER:
        return f"+{value - direct:.2f} ms"
    return f"x{value / direct:.2f}"


def report(results: dict) -> str:
    seq, conc = results["sequential"], results["concurrent"]
    lite = results.get("litellm") or {}
    has_lite = "litellm" in seq
    n = conc["streams"]
    ok = lambda good: "ok" if good else "MISS"  # noqa: E731
    fmt_ms = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    fmt_rate = lambda v: "-" if v is None else f"{v:,.0f}"  # noqa: E731
    fmt_cpu = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731

    def get(block: dict, side: str, key: str) -> float | None:
        return (block.get(side) or {}).get(key) if isinstance(block.get(side), dict) else None

    rows: list[tuple] = []  # name, direct, pg, lite, better, fmt, target, verdict

    def row(name, d, p, li, better, fmt, target="", verdict=""):
        rows.append((name, d, p, li, better, fmt, target, verdict))

    d, p = seq["direct"], seq["playground"]
    added = p["ttfc_p50_ms"] - d["ttfc_p50_ms"]
    row("time to first chunk p50 (ms)", d["ttfc_p50_ms"], p["ttfc_p50_ms"], get(seq, "litellm", "ttfc_p50_ms"), LOWER, fmt_ms,
        "< +2 ms", ok(added < TARGETS["added_ttfc_p50_ms"]))
    row("time to first chunk p99 (ms)", d["ttfc_p99_ms"], p["ttfc_p99_ms"], get(seq, "litellm", "ttfc_p99_ms"), LOWER, fmt_ms)
    row("chunks/s per stream", d["chunks_per_s"], p["chunks_per_s"], get(seq, "litellm", "chunks_per_s"), HIGHER, fmt_rate,
        ">= 10,000", ok(p["chunks_per_s"] >= TARGETS["chunks_per_s"]))
    row("whole stream p50 (ms)", d["total_p50_ms"], p["total_p50_ms"], get(seq, "litellm", "total_p50_ms"), LOWER, fmt_ms)
    row("server CPU per chunk (ms)", None, seq["playground_cpu_ms_per_chunk"], seq.get("litellm_cpu_ms_per_chunk"), LOWER,
        fmt_cpu, "< 0.07", ok(seq["playground_cpu_ms_per_chunk"] < TARGETS["cpu_ms_per_chunk"]))
    row("server CPU per request (ms)", None, seq["playground_cpu_ms_per_request"], seq.get("litellm_cpu_ms_per_request"),
        LOWER, fmt_ms)
    cd, cp = conc["direct"], conc["playground"]
    added_conc = cp["ttfc_p50_ms"] - cd["ttfc_p50_ms"]
    row(f"{n} concurrent: first chunk p50 (ms)", cd["ttfc_p50_ms"], cp["ttfc_p50_ms"], get(conc, "litellm", "ttfc_p50_ms"),
        LOWER, fmt_ms, "< +50 ms", ok(added_conc < TARGETS["added_ttfc_concurrent_ms"]))
    row(f"{n} concurrent: first chunk p99 (ms)", cd["ttfc_p99_ms"], cp["ttfc_p99_ms"], get(conc, "litellm", "ttfc_p99_ms"),
        LOWER, fmt_ms)
    row(f"{n} concurrent: chunks/s per stream", cd["chunks_per_s"], cp["chunks_per_s"], get(conc, "litellm", "chunks_per_s"),
        HIGHER, fmt_rate)
    row(f"{n} concurrent: server CPU/chunk (ms)", None, conc.get("playground_cpu_ms_per_chunk"),
        conc.get("litellm_cpu_ms_per_chunk"), LOWER, fmt_cpu)
    row(f"{n} concurrent: all done (ms)", conc["wall_ms_direct"], conc["wall_ms_playground"], conc.get("wall_ms_litellm"),
        LOWER, lambda v: "-" if v is None else f"{v:.1f}")

    header = (f"{'figure':<38} {'direct':>10} {'Playground':>11} {'LiteLLM':>11} {'PG vs direct':>13} {'LL vs direct':>13}"
              f"  {'ahead':<18} {'target':>10} {'':>5}")
    lines = [
        f"Proxy overhead: {d['events']} chunks per stream, {results['requests']} sequential streams, "
        f"{n} concurrent x {results['rounds']} rounds; direct, Playground (/v1, daphne) and LiteLLM "
        f"{lite.get('version', '')} (proxy, uvicorn) interleaved in one run",
        header, "-" * len(header),
    ]
    for name, dv, pv, lv, better, fmt, target, verdict in rows:
        lines.append(
            f"{name:<38} {fmt(dv):>10} {fmt(pv):>11} {fmt(lv) if has_lite else 'n/a':>11} {_vs(pv, dv, better):>13} "
            f"{_vs(lv, dv, better):>13}  {_ahead(pv, lv, better):<18} {target:>10} {verdict:>5}"
        )
    if has_lite:
        wins = sum(1 for r in rows if _ahead(r[2], r[3], r[4]).startswith("Playground"))
        losses = [r[0] for r in rows if _ahead(r[2], r[3], r[4]).startswith("LiteLLM")]
        lines.append(f"Playground is ahead of LiteLLM on {wins} of {len(rows)} figures"
                     + (f"; LiteLLM is ahead on: {', '.join(losses)}" if losses else "") + ".")
        if lite.get("install_s"):
            lines.append(f"(LiteLLM was installed into bench/.venv-litellm in this run: {lite['install_s']:.0f} s.)")
    else:
        lines.append(f"LiteLLM not measured: {lite.get('error', 'skipped (--no-litellm)')}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=500)
    parser.add_argument("--requests", type=int, default=100, help="sequential streams each way")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of concurrent streams")
    parser.add_argument("--engine-runs", type=int, default=3, help="local engine streams each way (0 skips the engine part)")
    parser.add_argument("--engine-tokens", type=int, default=128)
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM's proxy out")
    parser.add_argument("--install-timeout", type=float, default=600, help="cap on installing LiteLLM (s)")
    parser.add_argument("--fanout-streams", type=int, default=200, help="concurrent chat websockets (0 skips the fan-out)")
    parser.add_argument("--no-openwebui", action="store_true", help="skip the Open WebUI install check")
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a quick look (a few minutes)")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.rounds, args.engine_runs = min(args.requests, 20), 1, min(args.engine_runs, 1)
        args.fanout_streams = min(args.fanout_streams, 50)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.path.insert(0, str(ROOT))
    logger.info("starting the fast upstream and Playground (daphne) ...")
    with Servers(args.chunks) as servers:
        results = {}
        lite: dict = {}
        if not args.no_litellm:
            from bench import litellm_proxy

            lite = {"version": litellm_proxy.VERSION}
            try:
                binary, lite["install_s"] = litellm_proxy.ensure_installed(timeout=args.install_timeout)
                logger.info("starting LiteLLM's proxy ...")
                servers.litellm = litellm_proxy.LiteLLM(binary, servers.upstream_port).__enter__()
            except litellm_proxy.Unavailable as exc:
                logger.warning("LiteLLM left out: %s", exc)
                lite["error"] = str(exc)
        try:
            logger.info("measuring the proxy overhead ...")
            results.update(asyncio.run(measure(servers, requests=args.requests, concurrency=args.concurrency,
                                               rounds=args.rounds)))
        finally:
            if servers.litellm is not None:
                servers.litellm.__exit__()
        if "litellm" in results["sequential"]:
            lite.update({"sequential": results["sequential"]["litellm"], "concurrent": results["concurrent"]["litellm"]})
        if args.fanout_streams:
            from bench.fanout import measure_fanout

            results["fanout"] = measure_fanout(upstream_port=servers.upstream_port, streams=args.fanout_streams)
        if args.engine_runs:
            from bench.engine import measure_engine

            try:
                results["engine"] = measure_engine(f"http://127.0.0.1:{servers.port}", servers.token, servers.server_pid,
                                                   runs=args.engine_runs, max_tokens=args.engine_tokens)
            except Exception as exc:  # the proxy figures stand on their own; say what failed
                logger.exception("the local engine part failed")
                results["engine"] = {"error": f"{type(exc).__name__}: {exc}"}
    if not args.no_openwebui:
        from bench.openwebui import check as openwebui_check

        logger.info("checking whether Open WebUI installs here ...")
        results["openwebui"] = openwebui_check(resolve_timeout=0 if args.quick else 300)
    results.update({
        "requests": args.requests, "rounds": args.rounds, "targets": TARGETS,
        "litellm": lite or None, "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    text = report(results)
    if results.get("engine") and "error" not in results["engine"]:
        from bench.engine import report as engine_report

        text += "\n" + "\n".join(engine_report(results["engine"]))
    elif results.get("engine"):
        text += f"\n\nLocal engine part failed: {results['engine']['error']}"
    if results.get("fanout"):
        from bench.fanout import report as fanout_report

        text += "\n" + "\n".join(fanout_report(results["fanout"]))
    if results.get("openwebui"):
        from bench.openwebui import report as openwebui_report

        text += "\n" + "\n".join(openwebui_report(results["openwebui"]))
    sys.stdout.write(text + "\n")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    logger.info("wrote %s", args.output)
    return 0
