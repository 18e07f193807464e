"""Websocket fan-out: many chat streams at once through one daphne process to /ws/chat/.

Each client is what the chat page does: a websocket with the user's session cookie and the
page's Origin, one Run (the htmx ws extension's JSON of the chat form), then frames until
the final one (the message rendered, with Run back: `data-run-button`). The upstream is the
fast upstream (500 chunks as fast as it can), a provider of the bench team. Measured:
how many streams completed, the gap between frames (p50/p99 over every stream), the time
to the first token frame, the server's CPU and its resident memory (peak).

Run on the embedded default (in-memory channel layer, local-memory cache) and, when Redis
answers on 127.0.0.1:6379, with REDIS_URL set (channels-redis and the Redis cache).

    python -m bench.fanout setup <upstream /v1 url>   # in the var dir: prints session key and provider id
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

logger = logging.getLogger("bench")
ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
REDIS_URL = "redis://127.0.0.1:6379/0"
FINAL = "data-run-button"
TOKEN_FRAGMENT = 'hx-swap-oob="beforeend:#msg-'  # apps.chat.streaming.oob_append


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def redis_reachable() -> str | None:
    """None when Redis answers PING on 127.0.0.1:6379, else why not."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as s:
            s.sendall(b"PING\r\n")
            answer = s.recv(64)
    except OSError as exc:
        return f"Redis not reachable on 127.0.0.1:6379 ({exc.strerror or exc})"
    return None if answer.startswith(b"+PONG") else f"Redis on 127.0.0.1:6379 answered {answer[:40]!r}"


def setup(upstream: str) -> None:
    """A user, a team with the fast upstream as a provider, and a signed-in session (printed)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
    import django

    django.setup()
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model

    from apps.accounts.middleware import SESSION_TEAM_KEY
    from apps.accounts.services import team_create
    from apps.proxy.models import Provider
    from apps.proxy.services import provider_save

    user = get_user_model().objects.create_user(username="fanout", password="a-long-bench-password")
    team = team_create(name="Fan-out", owner=user)
    Provider.objects.filter(team=team, kind="local").update(enabled=False)  # only the upstream is measured
    provider = provider_save(team=team, user=user, name="Fast upstream", base_url=upstream, api_key="sk-bench")
    session = import_module(settings.SESSION_ENGINE).SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session[SESSION_TEAM_KEY] = team.pk
    session.create()
    print(session.session_key, provider.pk, settings.SESSION_COOKIE_NAME)


def chat_form(provider_id: int, model: str) -> dict:
    """What the chat page's form sends for Run (see apps/chat/tests/conftest.py: form)."""
    return {"model_key": f"{provider_id}:{model}", "draft": "Count to 500.", "system": "", "conversation": "",
            "uid": [], "role": [], "content": [], "images": [], "tool_calls": [], "tool_call_id": [], "runs": [],
            "compare_turn": []}


async def one_stream(port: int, cookie: str, form: dict, timeout: float) -> dict:
    import websockets

    url = f"ws://127.0.0.1:{port}/ws/chat/"
    gaps: list[float] = []
    frames = 0
    async with websockets.connect(url, additional_headers={"Cookie": cookie}, origin=f"http://127.0.0.1:{port}",
                                  max_size=None, open_timeout=timeout) as ws:
        started = time.perf_counter()
        await ws.send(json.dumps(form))
        last = None
        first_token = None
        async with asyncio.timeout(timeout):
            while True:
                frame = await ws.recv()
                now = time.perf_counter()
                frames += 1
                if last is not None:
                    gaps.append((now - last) * 1000)
                if first_token is None and TOKEN_FRAGMENT in frame:
                    first_token = (now - started) * 1000  # the first frame carrying answer text
                last = now
                if FINAL in frame:
                    if "run-error" in frame:
                        raise RuntimeError("the run failed: " + frame[-300:])
                    break
    return {"gaps": gaps, "frames": frames, "first_token_ms": first_token, "total_ms": (last - started) * 1000}


SINGLE_STREAMS = 20


def _single_streams(port: int, cookie: str, form: dict, upstream_port: int, timeout: float) -> dict:
    """One stream at a time, the chat page's websocket and the upstream read directly,
    interleaved so that both see the same machine: the page's added time to first token."""
    from bench.client import stream_once

    page_first, page_total, direct_first, direct_total = [], [], [], []
    for _ in range(SINGLE_STREAMS):
        direct = asyncio.run(stream_once("127.0.0.1", upstream_port, "/v1/chat/completions"))
        direct_first.append(direct.ttfc_ms)
        direct_total.append(direct.total_ms)
        page = asyncio.run(one_stream(port, cookie, form, timeout))
        page_first.append(page["first_token_ms"])
        page_total.append(page["total_ms"])
    return {
        "streams": SINGLE_STREAMS,
        "direct_first_p50_ms": _pct(direct_first, 50), "page_first_p50_ms": _pct(page_first, 50),
        "direct_total_p50_ms": _pct(direct_total, 50), "page_total_p50_ms": _pct(page_total, 50),
    }


def single_report(single: dict) -> list[str]:
    added = single["page_first_p50_ms"] - single["direct_first_p50_ms"]
    share = added / single["direct_total_p50_ms"] * 100 if single["direct_total_p50_ms"] else float("nan")
    ok = "ok" if added < 5 else "MISS"
    return [
        "",
        f"Chat page vs direct: {single['streams']} single streams each way, interleaved (500 chunks each, websocket "
        "send -> first token frame vs HTTP request -> first SSE event)",
        f"{'figure':<38} {'direct':>10} {'chat page':>10} {'added':>12}   target",
        f"{'time to first token p50 (ms)':<38} {single['direct_first_p50_ms']:>10.2f} {single['page_first_p50_ms']:>10.2f} "
        f"{added:>+9.2f} ms   < +5 ms {ok}",
        f"{'whole stream p50 (ms)':<38} {single['direct_total_p50_ms']:>10.2f} {single['page_total_p50_ms']:>10.2f} "
        f"{single['page_total_p50_ms'] - single['direct_total_p50_ms']:>+9.2f} ms   (includes rendering the final message; "
        f"first-token overhead is {share:.0f}% of the direct stream)",
    ]


class _Sampler(threading.Thread):
    """Reads the server's RSS every 50 ms while the streams run."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_kb, self.stop = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak_kb = max(self.peak_kb, _status_kb(self.pid, "VmRSS"))
            except OSError:
                return
            self.stop.wait(0.05)


async def _fan_out(port: int, cookie: str, form: dict, streams: int, timeout: float) -> tuple[list, float]:
    started = time.perf_counter()
    results = await asyncio.gather(*(one_stream(port, cookie, form, timeout) for _ in range(streams)),
                                   return_exceptions=True)
    return results, (time.perf_counter() - started) * 1000


def measure_layer(*, upstream_port: int, redis: bool, streams: int, timeout: float = 120) -> dict:
    """One daphne process on a fresh database; `streams` chat runs at once, after a small warm-up."""
    var = Path(tempfile.mkdtemp(prefix="playground-bench-fanout-"))
    env = {**os.environ, "PLAYGROUND_VAR_DIR": str(var), "V1_RATE_LIMIT": "0", "LOG_LEVEL": "WARNING",
           "DJANGO_SETTINGS_MODULE": "playground.settings"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    if redis:
        env["REDIS_URL"] = REDIS_URL
    server = None
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        key, provider_id, cookie_name = subprocess.run(
            [sys.executable, "-m", "bench.fanout", "setup", f"http://127.0.0.1:{upstream_port}/v1"],
            cwd=ROOT, env=env, check=True, capture_output=True, text=True,
        ).stdout.strip().splitlines()[-1].split()
        port = _free_port()
        daphne = shutil.which("daphne", path=str(Path(sys.executable).parent)) or "daphne"
        log = open(var / "daphne.log", "w+")  # noqa: SIM115 - closed with the var dir below
        server = subprocess.Popen([daphne, "-b", "127.0.0.1", "-p", str(port), "playground.asgi:application"],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"daphne did not start: {log.read()[-2000:]}") from None
                time.sleep(0.1)
        cookie = f"{cookie_name}={key}"
        form = chat_form(int(provider_id), "bench-model")
        for _ in range(3):  # warm up: imports, the model list, the first conversation
            asyncio.run(one_stream(port, cookie, form, timeout))
        single = _single_streams(port, cookie, form, upstream_port, timeout) if not redis else None
        rss_before = _status_kb(server.pid, "VmRSS")
        cpu_before = _cpu_seconds(server.pid)
        sampler = _Sampler(server.pid)
        load = os.getloadavg()[0]
        client_before = time.process_time()
        sampler.start()
        results, wall_ms = asyncio.run(_fan_out(port, cookie, form, streams, timeout))
        sampler.stop.set()
        sampler.join()
        cpu = _cpu_seconds(server.pid) - cpu_before
        client_cpu = time.process_time() - client_before
        done = [r for r in results if isinstance(r, dict)]
        errors = [f"{type(r).__name__}: {r}"[:200] for r in results if not isinstance(r, dict)]
        gaps = [g for r in done for g in r["gaps"]]
        log.seek(0)
        # What the server said about failed streams: the last line of each traceback.
        server_errors = sorted({line.strip()[:240] for line in log.read().splitlines()
                                if line and not line[0].isspace() and ("Error" in line or "Exception" in line)
                                and not line.startswith("Traceback")})
        if server_errors:  # keep the whole log for a look afterwards
            kept = ROOT / "bench" / "results" / f"fanout-{'redis' if redis else 'in-memory'}-daphne.log"
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(var / "daphne.log", kept)
        frames = sum(r["frames"] for r in done)
        return {
            "layer": "redis" if redis else "in-memory", "streams": streams, "completed": len(done),
            "errors": sorted(set(errors))[:5], "server_errors": server_errors[:5],
            "server_log": str(kept.relative_to(ROOT)) if server_errors else None,
            "gap_p50_ms": _pct(gaps, 50), "gap_p99_ms": _pct(gaps, 99), "gap_max_ms": max(gaps) if gaps else float("nan"),
            "first_token_p50_ms": _pct([r["first_token_ms"] for r in done if r["first_token_ms"]], 50),
            "first_token_p99_ms": _pct([r["first_token_ms"] for r in done if r["first_token_ms"]], 99),
            "stream_p50_ms": _pct([r["total_ms"] for r in done], 50),
            "wall_ms": wall_ms, "frames_per_stream": frames / len(done) if done else 0,
            "server_cpu_s": cpu, "client_cpu_s": client_cpu, "load_avg_1m": load, "server_cpu_ms_per_stream": cpu * 1000 / max(1, len(done)),
            "server_rss_mb_before": rss_before / 1024, "server_rss_mb_peak": max(sampler.peak_kb, rss_before) / 1024,
            "single": single,
        }
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(var, ignore_errors=True)


def measure_fanout(*, upstream_port: int, streams: int) -> dict:
    out: dict = {"streams": streams, "layers": {}}
    for redis in (False, True):
        name = "redis" if redis else "in-memory"
        if redis and (why := redis_reachable()):
            out["layers"][name] = {"skipped": why}
            continue
        logger.info("websocket fan-out: %d chat streams through one daphne (%s) ...", streams, name)
        try:
            out["layers"][name] = measure_layer(upstream_port=upstream_port, redis=redis, streams=streams)
        except Exception as exc:  # the other figures stand on their own; say what failed
            logger.exception("the fan-out on %s failed", name)
            out["layers"][name] = {"error": f"{type(exc).__name__}: {exc}"[:400]}
    return out


def report(fanout: dict) -> list[str]:
    layers = fanout["layers"]
    names = ["in-memory", "redis"]
    lines = ["", f"Websocket fan-out: {fanout['streams']} concurrent chat streams (/ws/chat/, the page's Run) "
                 "through one daphne process, fast upstream (500 chunks each)"]
    header = f"{'figure':<38} " + " ".join(f"{n:>14}" for n in names)
    lines += [header, "-" * len(header)]
    rows = [
        ("streams completed", lambda r: f"{r['completed']}/{r['streams']}"),
        ("gap between frames p50 (ms)", lambda r: f"{r['gap_p50_ms']:.2f}"),
        ("gap between frames p99 (ms)", lambda r: f"{r['gap_p99_ms']:.2f}"),
        ("gap between frames max (ms)", lambda r: f"{r['gap_max_ms']:.1f}"),
        ("first token frame p50 (ms)", lambda r: f"{r['first_token_p50_ms']:.1f}"),
        ("first token frame p99 (ms)", lambda r: f"{r['first_token_p99_ms']:.1f}"),
        ("frames per stream", lambda r: f"{r['frames_per_stream']:.1f}"),
        ("all done (ms)", lambda r: f"{r['wall_ms']:.0f}"),
        ("server CPU (s)", lambda r: f"{r['server_cpu_s']:.2f}"),
        ("server CPU per stream (ms)", lambda r: f"{r['server_cpu_ms_per_stream']:.1f}"),
        ("bench client CPU, same machine (s)", lambda r: f"{r.get('client_cpu_s', float('nan')):.2f}"),
        ("machine load average at start", lambda r: f"{r.get('load_avg_1m', float('nan')):.1f}"),
        ("server RSS before -> peak (MB)", lambda r: f"{r['server_rss_mb_before']:.0f}->{r['server_rss_mb_peak']:.0f}"),
    ]
    for label, fmt in rows:
        cells = []
        for n in names:
            r = layers.get(n) or {}
            cells.append(fmt(r) if "completed" in r else "-")
        lines.append(f"{label:<38} " + " ".join(f"{c:>14}" for c in cells))
    for n in names:
        r = layers.get(n) or {}
        if "skipped" in r:
            lines.append(f"{n}: skipped: {r['skipped']}")
        elif "error" in r:
            lines.append(f"{n}: failed: {r['error']}")
        elif r.get("errors"):
            lines.append(f"{n}: {r['streams'] - r['completed']} streams failed, e.g. {r['errors'][0]}")
        for error in (r.get("server_errors") or [])[:3]:
            lines.append(f"{n}: the server logged: {error}")
    single = (layers.get("in-memory") or {}).get("single")
    if single:
        lines += single_report(single)
    return lines


if __name__ == "__main__":
    if sys.argv[1:2] == ["setup"]:
        sys.path.insert(0, str(ROOT))
        setup(sys.argv[2])
