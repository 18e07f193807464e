"""Fixtures for the fault suite: /v1 on a live ASGI server, a token, and Run helpers.

Every fault test asserts two things: what the person calling sees (the HTTP answer, the
SSE error event, the page) and what the database keeps (the Run's status, partial output
and error text).
"""
from __future__ import annotations

import time

import pytest

from apps.proxy.models import Run, RunStatus

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}


@pytest.fixture
def auth(raw_token):
    return {"authorization": f"Bearer {raw_token}"}


def last_run(**filters) -> Run | None:
    return Run.objects.filter(**filters).order_by("-id").first()


def wait_finished(run_id: int, timeout: float = 8.0) -> Run:
    """The Run once it left 'running' (the server finishes it just after the response)."""
    deadline = time.monotonic() + timeout
    while True:
        run = Run.objects.get(pk=run_id)
        if run.status != RunStatus.RUNNING or time.monotonic() > deadline:
            return run
        time.sleep(0.02)


def the_run(timeout: float = 5.0) -> Run:
    """The one Run, once written: /v1 writes its row just after the first chunk goes out."""
    deadline = time.monotonic() + timeout
    while True:
        run = Run.objects.first()
        if run is not None or time.monotonic() > deadline:
            assert Run.objects.count() == 1, "expected exactly one run"
            return run
        time.sleep(0.01)


def sse_events(lines) -> list[str]:
    """The data payloads of an SSE response's lines."""
    return [line[len("data: "):] for line in lines if line.startswith("data: ")]
