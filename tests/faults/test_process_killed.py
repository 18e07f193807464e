"""The server process killed (kill -9) in the middle of a stream, then started again.

A real daphne on the embedded default (a file SQLite database in a temporary
PLAYGROUND_VAR_DIR) serves a /v1 streaming call from a test upstream that stalls after
two pieces. The server checkpoints the output while it streams; it is killed; on the
next start (apps/proxy/startup.py) the run is marked interrupted with that partial
output kept, and the caller's stream ended as a broken connection, not as success.
"""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.upstream import Reply, chat_chunks

BASE_DIR = Path(__file__).resolve().parents[2]

SETUP = r"""
import sys, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0, interactive=False)
from apps.accounts.services import owner_setup, api_token_create
from apps.proxy.models import Provider
from apps.proxy.services import provider_save
user, team = owner_setup(username="killtest", password="a-long-test-password", team_name="Kill")
try:
    import apps.engine.provider  # noqa: F401
except ImportError:
    Provider.objects.filter(team=team, kind="local").update(enabled=False)
provider_save(team=team, user=user, name="Stalling upstream", base_url=sys.argv[1], api_key="sk-kill-test")
print(api_token_create(user=user, team=team, name="kill")[1])
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PLAYGROUND_SKIP_STARTUP", "DATABASE_URL", "REDIS_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="playground.settings", PLAYGROUND_VAR_DIR=str(var_dir), RUN_CHECKPOINT_SECONDS="0.3",
        DEBUG="1", ENGINE_ENABLED=env.get("ENGINE_ENABLED", "1"), LOG_LEVEL="WARNING",
    )
    return env


def _start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "playground.asgi:application"],
        cwd=BASE_DIR, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"daphne exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    pytest.fail(f"daphne did not start: {log.read_text()[-2000:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def _run_row(db: Path) -> dict | None:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT status, output_text, error, error_code, provider_name, source FROM proxy_run ORDER BY id DESC LIMIT 1").fetchone()
        return dict(row) if row else None


def test_server_killed_mid_stream_run_is_interrupted_with_partial_output(tmp_path, upstream):
    var_dir = tmp_path / "var"
    env = _env(var_dir)
    setup = subprocess.run([sys.executable, "-c", SETUP, upstream.url], cwd=BASE_DIR, env=env,
                           capture_output=True, text=True, timeout=180)
    assert setup.returncode == 0, setup.stderr[-3000:]
    token = setup.stdout.strip().splitlines()[-1]
    db = var_dir / "playground.sqlite3"
    log = tmp_path / "daphne.log"
    upstream.script("POST /v1/chat/completions",
                    Reply.stream(chat_chunks(["Partial", " answer", " that", " never", " ends"]), stall_after=3, stall_seconds=30))

    port = _free_port()
    server = _start_server(env, port, log)
    try:
        received: list[str] = []
        broken = None
        with httpx.Client(timeout=20) as http:
            with http.stream("POST", f"http://127.0.0.1:{port}/v1/chat/completions",
                             headers={"authorization": f"Bearer {token}"},
                             json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "go"}], "stream": True}) as response:
                assert response.status_code == 200
                lines = response.iter_lines()
                for line in lines:
                    if line.startswith("data: "):
                        received.append(line)
                    if len(received) == 3:  # the role chunk, "Partial", " answer": then it stalls
                        break
                # The server checkpoints the output so far while the upstream is silent.
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and (_run_row(db) or {}).get("output_text") != "Partial answer":
                    time.sleep(0.05)
                assert _run_row(db)["output_text"] == "Partial answer", "no checkpoint of the partial output"
                assert _run_row(db)["status"] == "running"

                os.killpg(server.pid, signal.SIGKILL)
                server.wait(10)
                try:
                    for line in lines:
                        received.append(line)
                except httpx.HTTPError as exc:
                    broken = exc
        assert broken is not None, "the caller's stream must end as a broken connection"
        assert not any("[DONE]" in line for line in received), "a killed stream must not look finished"
        assert upstream.wait_for_disconnect(5), "the upstream request dies with the process"
        assert _run_row(db)["status"] == "running"  # nobody could write the end

        server = _start_server(env, port, log)  # startup marks runs of dead processes interrupted
        row = _run_row(db)
        assert row["status"] == "interrupted"
        assert row["output_text"] == "Partial answer"
        assert row["error_code"] == "interrupted" and "server stopped while this run was in progress" in row["error"]
        assert row["provider_name"] == "Stalling upstream" and row["source"] == "v1"

        # The restarted server serves again.
        again = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", headers={"authorization": f"Bearer {token}"},
                           json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "back again"}]}, timeout=20)
        assert again.status_code == 200 and again.json()["choices"][0]["message"]["content"] == "Echo: back again"
    finally:
        _stop(server)
