"""Faults as the chat page shows them (its websocket, against the test upstream).

The chat app's own tests cover a dropped stream and Stop; these add what the fault suite
lists: a 429 storm (the page says rate limited, with the wait), a stall past the read
timeout, a host that does not resolve, and the provider removed while the answer streams.
"""
from __future__ import annotations

import html

import pytest
from asgiref.sync import sync_to_async

from apps.chat.tests.conftest import chat_connect, form  # noqa: F401  (fixture)
from apps.proxy.models import Provider, Run, RunStatus
from tests.upstream import Reply, chat_chunks

pytestmark = pytest.mark.django_db(transaction=True)
CHAT = "POST /v1/chat/completions"


@pytest.fixture(autouse=True)
def _no_engine(team):
    import importlib.util

    if importlib.util.find_spec("apps.engine.provider") is None:
        Provider.objects.filter(team=team, kind="local").update(enabled=False)


async def _runs() -> list[Run]:
    return await sync_to_async(lambda: list(Run.objects.order_by("id")))()


def _text(frames: str) -> str:
    return html.unescape(frames)


async def test_429_storm_the_page_says_rate_limited_with_the_wait(owner, team, upstream, upstream_provider, chat_connect, settings):
    settings.UPSTREAM_MAX_RETRIES = 2
    upstream.script(CHAT, *[Reply.error(429, "Rate limit reached", headers={"retry-after": "0.05"})] * 3)
    client = await chat_connect(owner, team)
    await client.send(form(upstream_provider))
    final = _text(await client.until("data-run-button"))
    await client.close()
    assert "rate limiting requests" in final and "It asked to wait 0.05 s" in final
    (run,) = await _runs()
    assert run.status == RunStatus.FAILED and run.error_code == "rate_limited"
    assert len(upstream.requests_to("/v1/chat/completions")) == 3


async def test_stall_past_the_read_timeout_shows_the_error_and_keeps_the_partial_answer(owner, team, upstream, upstream_provider, chat_connect, settings):
    settings.UPSTREAM_READ_TIMEOUT = 0.3
    upstream.script(CHAT, Reply.stream(chat_chunks(["Half", " an", " answer"]), stall_after=3, stall_seconds=5))
    client = await chat_connect(owner, team)
    await client.send(form(upstream_provider))
    final = _text(await client.until("data-run-button"))
    await client.close()
    assert "stopped sending for more than 0.3 s" in final and "Half an" in final
    (run,) = await _runs()
    assert run.status == RunStatus.FAILED and run.output_text == "Half an" and run.error_code == "timeout"


async def test_unresolvable_host_is_named_on_the_page(owner, team, upstream, upstream_provider, chat_connect):
    from apps.proxy.services import provider_save

    nowhere = await sync_to_async(provider_save)(team=team, user=owner, name="Nowhere", base_url="http://nonexistent.invalid/v1", api_key="sk-x")
    client = await chat_connect(owner, team)
    await client.send(form(nowhere))
    final = _text(await client.until("data-run-button"))
    await client.close()
    assert "Cannot resolve the host of Nowhere (http://nonexistent.invalid/v1/chat/completions). Check the base URL." in final
    (run,) = await _runs()
    assert run.status == RunStatus.FAILED and run.error_code == "dns_error" and run.provider_name == "Nowhere"


async def test_provider_removed_mid_answer_the_page_gets_the_whole_answer(owner, team, upstream, upstream_provider, chat_connect):
    from apps.proxy.services import provider_delete

    pieces = [f" p{i}" for i in range(8)]
    upstream.script(CHAT, Reply.stream(chat_chunks(pieces), delay=0.08))
    client = await chat_connect(owner, team)
    await client.send(form(upstream_provider))
    await client.until("p1")
    await sync_to_async(provider_delete)(provider=upstream_provider)
    final = _text(await client.until("data-run-button"))
    await client.close()
    assert "p7" in final
    (run,) = await _runs()
    assert run.status == RunStatus.SUCCEEDED and run.output_text == "".join(pieces)
    assert run.provider_id is None and run.provider_name == "Test upstream"
