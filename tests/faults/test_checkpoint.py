"""A streaming run's output is checkpointed while it streams (so a dead process leaves it),
at most once per RUN_CHECKPOINT_SECONDS and never over a finished run."""
from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from apps.proxy import services
from apps.proxy.models import Run, RunStatus
from tests.faults.conftest import CHAT
from tests.upstream import Reply, chat_chunks

pytestmark = pytest.mark.django_db(transaction=True)


async def test_partial_output_is_saved_while_the_upstream_is_silent(team, owner, upstream_provider, upstream, settings):
    settings.RUN_CHECKPOINT_SECONDS = 0.2
    upstream.script("POST /v1/chat/completions", Reply.stream(chat_chunks(["So", " far", " more"]), stall_after=3, stall_seconds=5))
    stream = await services.stream_start(team=team, user=owner, provider=upstream_provider, request=CHAT)

    async def consume():
        async with stream:
            async for _ in stream:
                pass

    task = asyncio.create_task(consume())
    row = None
    for _ in range(100):
        await asyncio.sleep(0.05)
        row = await sync_to_async(Run.objects.get)(pk=stream.run.pk)
        if row.output_text:
            break
    assert row.status == RunStatus.RUNNING and row.output_text == "So far"
    assert row.output["choices"][0]["text"] == "So far"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    row = await sync_to_async(Run.objects.get)(pk=stream.run.pk)
    assert row.status == RunStatus.CANCELLED and row.output_text == "So far"


async def test_a_short_run_writes_no_checkpoint_and_a_late_one_cannot_overwrite(team, owner, upstream_provider, upstream):
    stream = await services.stream_start(team=team, user=owner, provider=upstream_provider, request=CHAT)
    async with stream:
        async for _ in stream:
            pass
    assert stream._checkpoint is None  # cancelled at the finish (RUN_CHECKPOINT_SECONDS is 2 s)
    await sync_to_async(services.run_progress_save)(run_id=stream.run.pk, output={}, output_text="stale")
    row = await sync_to_async(Run.objects.get)(pk=stream.run.pk)
    assert row.status == RunStatus.SUCCEEDED and row.output_text == "Echo: Say hello"
