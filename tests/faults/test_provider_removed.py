"""A provider deleted (Settings -> Providers -> Remove) while one of its runs streams.

The run already holds what it needs to finish: it finishes (or fails) cleanly, the Run
row survives the provider with its provider_name, and the stream the caller reads is
complete.
"""
from __future__ import annotations

import threading

import httpx
import orjson
import pytest

from apps.proxy.models import Provider, Run, RunStatus
from tests.faults.conftest import CHAT, sse_events, the_run, wait_finished
from tests.upstream import Reply, chat_chunks

pytestmark = pytest.mark.django_db(transaction=True)


def _wait_for(predicate, timeout=5.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_provider_removed_mid_stream_run_finishes_and_keeps_provider_name(v1_url, auth, upstream, upstream_provider, owner_client):
    pieces = [f"w{i} " for i in range(10)]
    upstream.script("POST /v1/chat/completions", Reply.stream(chat_chunks(pieces), delay=0.1))
    payloads: list[str] = []
    first_chunk = threading.Event()

    def read():
        with httpx.Client(timeout=20) as http:
            with http.stream("POST", f"{v1_url}/chat/completions", headers=auth, json={**CHAT, "stream": True}) as response:
                assert response.status_code == 200
                for line in response.iter_lines():
                    payloads.extend(sse_events([line]))
                    if len(payloads) >= 2:
                        first_chunk.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert first_chunk.wait(10), "the stream never started"
    run = the_run()
    assert run.status == RunStatus.RUNNING

    # The owner removes the provider through the page while the answer is still coming.
    page = owner_client.post(f"/settings/providers/{upstream_provider.pk}/delete/", follow=True)
    assert page.status_code == 200
    assert b"Provider Test upstream removed" in page.content
    assert not Provider.objects.filter(pk=upstream_provider.pk).exists()

    reader.join(20)
    assert payloads[-1] == "[DONE]"
    text = "".join((orjson.loads(p)["choices"] or [{}])[0].get("delta", {}).get("content") or "" for p in payloads[:-1])
    assert text == "".join(pieces), "the caller got the whole answer"

    run = wait_finished(run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output_text == "".join(pieces)
    assert run.provider_id is None and run.provider_name == "Test upstream"


def test_provider_removed_then_its_model_is_a_clear_404(v1_url, auth, upstream, upstream_provider):
    from apps.proxy.services import provider_delete

    provider_delete(provider=upstream_provider)
    response = httpx.post(f"{v1_url}/chat/completions", headers=auth, json=CHAT, timeout=20)
    assert response.status_code == 404
    assert "does not exist in any provider of your team" in response.json()["error"]["message"]
