"""The database locked or away for a moment just as a run finishes.

SQLite: another connection holds the write lock past the busy timeout while the answer
ends. PostgreSQL: another session locks the Run row, then every server connection is
killed mid-stream. Either way the run's result is saved once the database is back (or,
if it never comes back, the caller is told the answer was not saved), and the caller's
stream is complete.
"""
from __future__ import annotations

import sqlite3
import threading
import time

import httpx
import orjson
import pytest
from django.db import connection

from apps.proxy.models import Run, RunStatus
from tests.faults.conftest import CHAT, sse_events, the_run, wait_finished
from tests.upstream import Reply, chat_chunks

pytestmark = pytest.mark.django_db(transaction=True)

PIECES = [f"p{i} " for i in range(6)]


def _text(payloads: list[str]) -> str:
    out = []
    for payload in payloads:
        if payload == "[DONE]":
            continue
        data = orjson.loads(payload)
        if data.get("choices"):
            out.append(data["choices"][0].get("delta", {}).get("content") or "")
    return "".join(out)


class Reader(threading.Thread):
    """Streams one /v1 chat call in the background, collecting its SSE payloads."""

    def __init__(self, v1_url: str, auth: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.v1_url, self.auth = v1_url, auth
        self.payloads: list[str] = []
        self.status: int | None = None
        self.started_streaming = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=30) as http:
            with http.stream("POST", f"{self.v1_url}/chat/completions", headers=self.auth, json={**CHAT, "stream": True}) as response:
                self.status = response.status_code
                for line in response.iter_lines():
                    self.payloads.extend(sse_events([line]))
                    self.started_streaming.set()


@pytest.fixture
def short_busy_timeout():
    """SQLite waits this long for a lock before 'database is locked' (20 s in production)."""
    options = connection.settings_dict.setdefault("OPTIONS", {})  # shared by every thread's connection
    before = options.get("timeout")
    options["timeout"] = 0.2
    yield 0.2
    if before is None:
        options.pop("timeout", None)
    else:
        options["timeout"] = before


def _sqlite_only():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's write lock and busy timeout; PostgreSQL has its own test below")


def _hold_write_lock(seconds: float, taken: threading.Event) -> threading.Thread:
    def hold():
        other = sqlite3.connect(connection.settings_dict["NAME"], timeout=5, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # the write lock: every other writer waits
        taken.set()
        time.sleep(seconds)
        other.execute("ROLLBACK")
        other.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    return thread


def test_sqlite_locked_past_busy_timeout_at_finish_the_result_is_saved_when_it_frees(
    v1_url, auth, upstream, short_busy_timeout,
):
    _sqlite_only()
    upstream.script("POST /v1/chat/completions", Reply.stream(chat_chunks(PIECES), delay=0.1))
    reader = Reader(v1_url, auth)
    reader.start()
    assert reader.started_streaming.wait(10)
    run_id = the_run().pk
    taken = threading.Event()
    # Held for 1.5 s, the stream ends after ~0.6 s: the finish meets the lock several times.
    holder = _hold_write_lock(1.5, taken)
    assert taken.wait(5)
    reader.join(30)
    holder.join(10)
    assert reader.status == 200
    assert reader.payloads[-1] == "[DONE]" and _text(reader.payloads) == "".join(PIECES)
    assert not any('"error"' in p for p in reader.payloads)
    run = wait_finished(run_id)
    assert run.status == RunStatus.SUCCEEDED
    assert run.output_text == "".join(PIECES)
    assert run.finished_at is not None and run.completion_tokens


def test_sqlite_locked_for_good_the_caller_is_told_the_answer_was_not_saved(
    v1_url, auth, upstream, short_busy_timeout, settings,
):
    _sqlite_only()
    settings.RUN_SAVE_RETRY_SECONDS = 0.5
    upstream.script("POST /v1/chat/completions", Reply.stream(chat_chunks(PIECES), delay=0.05))
    reader = Reader(v1_url, auth)
    reader.start()
    assert reader.started_streaming.wait(10)
    run_id = the_run().pk
    taken = threading.Event()
    holder = _hold_write_lock(2.0, taken)
    assert taken.wait(5)
    reader.join(30)
    assert reader.status == 200 and reader.payloads[-1] == "[DONE]"
    assert _text(reader.payloads) == "".join(PIECES), "the caller still got the whole answer"
    error = orjson.loads(reader.payloads[-2])["error"]
    assert error["code"] == "database_unavailable"
    assert "received but could not be saved" in error["message"] and "database is locked" in error["message"]
    holder.join(10)
    assert Run.objects.get(pk=run_id).status == RunStatus.RUNNING  # nothing could be written, as it says


def test_postgresql_row_locked_then_connections_killed_mid_stream(v1_url, auth, upstream):
    if connection.vendor != "postgresql":
        pytest.skip("row locks and killed sessions are PostgreSQL's; SQLite's lock is tested above")
    import psycopg

    upstream.script("POST /v1/chat/completions", Reply.stream(chat_chunks(PIECES), delay=0.15))
    reader = Reader(v1_url, auth)
    reader.start()
    assert reader.started_streaming.wait(10)
    run_id = the_run().pk
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    with psycopg.connect(**params, autocommit=True) as admin:
        # Every session of the server is killed while it streams: the finish needs a new one.
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> %s",
            [connection.connection.info.backend_pid if connection.connection else 0],
        )
        with psycopg.connect(**params) as locker:
            locker.execute("SELECT id FROM proxy_run WHERE id = %s FOR UPDATE", [run_id])
            time.sleep(1.2)  # the stream ends meanwhile; its finish waits for this lock
            assert Run.objects.get(pk=run_id).status == RunStatus.RUNNING
            locker.rollback()
    reader.join(30)
    assert reader.payloads[-1] == "[DONE]" and _text(reader.payloads) == "".join(PIECES)
    run = wait_finished(run_id)
    assert run.status == RunStatus.SUCCEEDED and run.output_text == "".join(PIECES)
