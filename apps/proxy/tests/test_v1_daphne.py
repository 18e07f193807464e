"""Under daphne (what `make run` serves with), a client leaving mid-stream stops the upstream request.

Django's ASGI handler cancels the response task when the server reports http.disconnect;
this checks that daphne reports it and that the cancellation reaches the upstream request
and the Run, in a real daphne process sharing the test database.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from apps.accounts.services import api_token_create
from apps.proxy.models import Run, RunStatus
from tests.upstream import Reply, chat_chunks

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[3]


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = f"{quote(db['USER'] or '')}:{quote(db['PASSWORD'] or '')}@" if db["USER"] else ""
    return f"postgres://{auth}{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def daphne_url(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "SECRET_KEY": settings.SECRET_KEY,
        "FIELD_ENCRYPTION_KEY": settings.FIELD_ENCRYPTION_KEY,
        "PLAYGROUND_VAR_DIR": str(tmp_path / "var"),
        "PLAYGROUND_SKIP_STARTUP": "1",
        "UPSTREAM_READ_TIMEOUT": "20",
        "LOG_LEVEL": "WARNING",
    }
    daphne = shutil.which("daphne", path=str(Path(sys.executable).parent)) or "daphne"
    server = subprocess.Popen([daphne, "-b", "127.0.0.1", "-p", str(port), "playground.asgi:application"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url + "/healthz", timeout=2)
            break
        except httpx.HTTPError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"daphne did not start: {server.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
    yield url
    server.terminate()
    server.wait(timeout=10)


def test_disconnect_under_daphne_cancels_upstream_and_keeps_partial_output(daphne_url, team, owner, upstream_provider, upstream):
    cache.clear()
    raw = api_token_create(user=owner, team=team, name="daphne")[1]
    upstream.script("POST /v1/chat/completions",
                    Reply.stream(chat_chunks([f"w{i} " for i in range(10)]), stall_after=4, stall_seconds=15))
    received = []
    with httpx.Client(timeout=15) as http:
        with http.stream("POST", f"{daphne_url}/v1/chat/completions", headers={"authorization": f"Bearer {raw}"},
                         json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": True}) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: "):
                    received.append(line)
                if len(received) == 4:
                    break
    assert upstream.wait_for_disconnect(timeout=8), "daphne did not pass the disconnect on: the upstream request stayed open"
    # The Run row is written just after the first chunk has gone out, on a database
    # thread: it may land a moment after the upstream saw the hang-up. Wait for it to be
    # there and finished.
    deadline = time.monotonic() + 8
    run = Run.objects.first()
    while (run is None or run.status == RunStatus.RUNNING) and time.monotonic() < deadline:
        time.sleep(0.05)
        run = Run.objects.first()
    assert run is not None, "no Run row was written for the /v1 stream"
    assert run.status == RunStatus.CANCELLED
    assert run.output_text == "w0 w1 w2 "
    assert run.source == "v1"
