"""Fixtures for the fault suite: /v1 on a live ASGI server, a token, and Run helpers.

Every fault test asserts two things: what the person calling sees (the HTTP answer, the
SSE error event, the page) and what the database keeps (the Run's status, partial output
and error text).
"""
from __future__ import annotations

import time

import pytest
from django.core.cache import cache

from apps.proxy.models import Provider, Run, RunStatus
from tests.live import live_asgi  # noqa: F401  (fixture)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}


def engine_available() -> bool:
    try:
        import apps.engine.provider  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture
def raw_token(team, owner, upstream_provider):
    """A personal /v1 token of Acme's owner; Acme has the test upstream as a provider."""
    from apps.accounts.services import api_token_create

    cache.clear()  # the per-token rate limit's windows
    if not engine_available():  # until the engine lands, its provider would only add noise
        Provider.objects.filter(team=team, kind="local").update(enabled=False)
    return api_token_create(user=owner, team=team, name="faults")[1]


@pytest.fixture
def v1_url(live_asgi):
    return live_asgi.url + "/v1"


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


def sse_events(lines) -> list[str]:
    """The data payloads of an SSE response's lines."""
    return [line[len("data: "):] for line in lines if line.startswith("data: ")]
