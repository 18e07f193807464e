"""Where /v1's time to first chunk goes inside daphne, step by step.

    .venv/bin/python -m bench.timeline [--requests 500] [--chunks 5]

The fast upstream and Playground under daphne as in `make bench`, but the server runs
bench/timeline_app.py, which notes when each request reaches each step. Sequential
requests (BENCH_SETTLE apart, as in `make bench`); the table gives each step's p50 from
the request's bytes arriving, and the time since the step before. The wrappers add a
little to every step: read the steps against each other, not the total against
`make bench`'s figure.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench.client import stream_once
from bench.run import SETTLE_SECONDS, Servers, _pct

# The steps bench/timeline_app.py times, in the order a request passes them.
STEPS = [
    "request parsed by Twisted",
    "app scheduled by daphne",
    "view reached (Django request, auth, checks)",
    "upstream request built (httpx send)",
    "upstream headers in",
    "response started",
    "first chunk handed to Twisted",
    "first chunk written to the socket",
]


class TimelineServers(Servers):
    def server_command(self) -> list[str]:
        daphne = shutil.which("daphne", path=str(Path(sys.executable).parent)) or "daphne"
        return [daphne, "-b", "127.0.0.1", "-p", str(self.port), "bench.timeline_app:application"]


async def _requests(servers: Servers, count: int) -> list[float]:
    direct = []
    for i in range(count + 10):  # the first 10 warm up (connections, caches); all are timed by the server
        direct.append((await stream_once("127.0.0.1", servers.upstream_port, "/v1/chat/completions")).ttfc_ms)
        await stream_once("127.0.0.1", servers.port, "/v1/chat/completions", servers.token)
        await asyncio.sleep(SETTLE_SECONDS)
    return direct[10:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.timeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--chunks", type=int, default=5)
    args = parser.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="playground-timeline-")) / "timeline.json"
    os.environ["TIMELINE_OUT"] = str(out)
    with TimelineServers(args.chunks) as servers:
        direct = asyncio.run(_requests(servers, args.requests))
        server = servers.procs[-1]
        server.terminate()
        server.wait(timeout=10)
        steps = json.loads(out.read_text())
    print(f"/v1 inside daphne: {args.requests} sequential streams of {args.chunks} chunks, p50 ms from the request's "
          f"bytes arriving (the direct read's first chunk: {_pct(direct, 50):.2f} ms)")
    print(f"{'step':<46} {'at':>8} {'since the last':>15}")
    before = 0.0
    for step in STEPS:
        if step in steps:
            at = steps[step]["p50"]
            print(f"{step:<46} {at:>8.3f} {at - before:>15.3f}")
            before = at
    shutil.rmtree(out.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
