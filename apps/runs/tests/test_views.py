"""The runs pages, with runs made for real: the chat and completions websockets and /v1."""
from __future__ import annotations

import asyncio

import openai
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.cache import cache
from django.test import Client

from apps.accounts.services import api_token_create
from apps.proxy.models import Run
from tests.live import live_asgi  # noqa: F401  (a real ASGI server sharing the test database)
from tests.upstream import Reply, chat_chunks, completion_chunks

pytestmark = pytest.mark.django_db(transaction=True)


async def _page_run(consumer, path: str, user, team, data: dict) -> None:
    """Run from a playground page over its websocket, until the Run button comes back."""
    ws = WebsocketCommunicator(consumer.as_asgi(), path)
    ws.scope["user"] = user
    ws.scope["session"] = {"team_id": team.pk}
    connected, _ = await ws.connect()
    assert connected
    try:
        await ws.send_json_to(data)
        while "data-run-button" not in await ws.receive_from(timeout=10):
            pass
    finally:
        await ws.disconnect()


async def test_the_history_lists_runs_made_by_chat_completions_and_v1(owner, team, upstream, upstream_provider, live_asgi):
    from apps.chat.consumers import ChatConsumer
    from apps.completions.consumers import CompletionConsumer

    upstream.script("POST /v1/chat/completions", Reply.stream(chat_chunks(["From", " chat"])))
    upstream.script("POST /v1/completions", Reply.stream(completion_chunks([" from", " completions"])))
    await _page_run(ChatConsumer, "/ws/chat/", owner, team, {
        "model_key": f"{upstream_provider.pk}:gpt-4o-mini", "draft": "chat question", "system": "", "conversation": "",
        "uid": [], "role": [], "content": [], "images": [], "tool_calls": [], "tool_call_id": [], "runs": [], "compare_turn": [],
    })
    await _page_run(CompletionConsumer, "/ws/completions/", owner, team, {
        "model_key": f"{upstream_provider.pk}:gpt-3.5-turbo-instruct", "prompt": "completion prompt", "max_tokens": "8",
    })
    await sync_to_async(cache.clear)()
    raw = (await sync_to_async(api_token_create)(user=owner, team=team, name="script"))[1]
    sdk = openai.OpenAI(base_url=live_asgi.url + "/v1", api_key=raw, max_retries=0, timeout=20)
    reply = await asyncio.to_thread(lambda: sdk.completions.create(model="gpt-3.5-turbo-instruct", prompt="v1 prompt"))
    assert reply.choices[0].text == " once upon a time"
    for _ in range(100):  # /v1 finishes its run just after the reply
        if not await sync_to_async(Run.objects.filter(status="running").exists)():
            break
        await asyncio.sleep(0.05)

    client = Client()
    await sync_to_async(client.force_login)(owner)
    html = (await sync_to_async(client.get)("/runs/")).content.decode()
    runs = await sync_to_async(lambda: list(Run.objects.order_by("id")))()
    assert [(r.capability, r.source, r.status) for r in runs] == [
        ("chat", "page", "succeeded"), ("completion", "page", "succeeded"), ("completion", "v1", "succeeded")]
    for run in runs:
        assert f'href="/runs/{run.pk}/"' in html
    assert "chat question" in html and "From chat" in html
    assert "completion prompt" in html and "from completions" in html
    assert "v1 prompt" in html and ">/v1<" in html
    assert html.index(f"#{runs[2].pk}<") < html.index(f"#{runs[0].pk}<")  # newest first
    only_v1 = (await sync_to_async(client.get)("/runs/?source=v1")).content.decode()
    assert "v1 prompt" in only_v1 and "chat question" not in only_v1
    # Open one: the exact request and response, the numbers, and Replay in its playground.
    detail = (await sync_to_async(client.get)(f"/runs/{runs[1].pk}/")).content.decode()
    assert "completion prompt" in detail and "from completions" in detail and "&quot;max_tokens&quot;: 8" in detail
    assert f'href="/completions/?run={runs[1].pk}"' in detail and "Tokens in" in detail
    chat_detail = (await sync_to_async(client.get)(f"/runs/{runs[0].pk}/")).content.decode()
    assert f'href="/chat/?run={runs[0].pk}"' in chat_detail and "chat question" in chat_detail


def test_load_more_returns_the_next_rows_only(owner_client, team, owner):
    Run.objects.bulk_create([Run(team=team, user=owner, capability="chat", model="m", input={"messages": [{"role": "user", "content": f"q{i}"}]}) for i in range(60)])
    first = owner_client.get("/runs/").content.decode()
    assert first.count('class="run-row"') == 50 and "Load older runs" in first
    cursor = first.split("after=")[1].split('"')[0]
    more = owner_client.get(f"/runs/?after={cursor}", HTTP_HX_REQUEST="true").content.decode()
    assert more.count('class="run-row"') == 10 and "<html" not in more and "Load older runs" not in more


def test_filters_empty_state_and_bad_dates(owner_client, team, owner):
    Run.objects.create(team=team, user=owner, capability="chat", model="gpt-4o", input={"messages": []})
    html = owner_client.get("/runs/?model=nope&from=tomorrow").content.decode()
    assert "No runs match these filters" in html and "is not a date: use YYYY-MM-DD" in html


def test_usage_page_draws_a_chart(owner_client, team, owner):
    Run.objects.create(team=team, user=owner, capability="chat", model="gpt-4o", prompt_tokens=40, completion_tokens=10)
    html = owner_client.get("/runs/usage/").content.decode()
    assert '<svg class="usage-chart"' in html and "40 in + 10 out tokens" in html and html.count('<g class="bar">') == 30
    assert "olivia" in html and "gpt-4o" in html
    cost = owner_client.get("/runs/usage/?metric=cost&from=2026-01-01&to=2026-01-07").content.decode()
    assert cost.count('<g class="bar">') == 7 and "Cost (USD) per day" in cost and "No runs in this period" in cost


def test_another_teams_run_is_404(outsider_client, team, owner):
    run = Run.objects.create(team=team, user=owner, capability="chat", model="secret", output_text="secret")
    assert outsider_client.get(f"/runs/{run.pk}/").status_code == 404
    assert b"secret" not in outsider_client.get("/runs/").content
    assert b"secret" not in outsider_client.get("/runs/usage/").content


def test_an_editor_can_share_a_run_read_only_a_viewer_cannot(owner_client, viewer_client, team, owner):
    run = Run.objects.create(team=team, user=owner, capability="completion", model="gemma-3-270m",
                             input={"prompt": "Shared prompt"}, output_text=" shared answer", status="succeeded")
    html = owner_client.get(f"/runs/{run.pk}/").content.decode()
    assert f'action="/prompts/runs/{run.pk}/share/"' in html
    assert "Create read-only link" not in viewer_client.get(f"/runs/{run.pk}/").content.decode()
    response = owner_client.post(f"/prompts/runs/{run.pk}/share/", {"expires_in": "24"}, follow=True)
    link = next(m.message for m in response.context["messages"]).split("Share link created: ")[1]
    public = Client().get(link.replace("http://testserver", ""))
    assert public.status_code == 200 and "shared answer" in public.content.decode()
