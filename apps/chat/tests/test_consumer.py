"""The chat websocket against the test upstream over real HTTP: run, stop, reload, faults."""
from __future__ import annotations

import asyncio
import re

import pytest
from asgiref.sync import sync_to_async

from apps.chat import live
from apps.chat.models import Conversation
from apps.chat.render import column_key
from apps.chat.tests.conftest import form, with_messages
from apps.proxy.models import Run, RunStatus
from tests.upstream import Reply, chat_chunks

pytestmark = pytest.mark.django_db(transaction=True)
CHAT = "POST /v1/chat/completions"


async def runs():
    return await sync_to_async(lambda: list(Run.objects.order_by("id")))()


async def conversation():
    return await sync_to_async(lambda: Conversation.objects.get())()


async def test_run_streams_escaped_tokens_then_the_final_message(owner, team, upstream, upstream_provider, chat_connect):
    upstream.script(CHAT, Reply.stream(chat_chunks(["Hel", "lo <b>", " **world**"], usage={"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12})))
    client = await chat_connect(owner, team)
    await client.send(form(upstream_provider, draft="Say hello"))
    frames = await client.until('data-run-button')  # the final frame brings Run back
    await client.close()
    (run,) = await runs()
    assert run.status == RunStatus.SUCCEEDED and run.output_text == "Hello <b> **world**"
    # While streaming: the user message, an empty answer, Stop; tokens escaped, out of band.
    key = column_key((await conversation()).state["messages"][-1]["uid"], 0)
    assert "Say hello" in client.frames[0] and f'id="msg-{key}-0"' in client.frames[0] and "data-stop-button" in client.frames[0]
    assert f'hx-swap-oob="beforeend:#msg-{key}-0"' in frames
    assert "lo &lt;b&gt;" in frames and "lo <b>" not in frames
    # Finally: the server-rendered markdown message with its numbers.
    final = client.frames[-1]
    assert 'hx-swap-oob="outerHTML"' in final and "<strong>world</strong>" in final
    assert "9 in" in final and "3 out" in final and f"run #{run.pk}" in final
    sent = upstream.requests_to("/v1/chat/completions")[0].json
    assert sent["messages"] == [{"role": "user", "content": "Say hello"}] and sent["model"] == "gpt-4o-mini"
    conv = await conversation()
    roles = [(m["role"], m["content"]) for m in conv.state["messages"]]
    assert roles == [("user", "Say hello"), ("assistant", "Hello <b> **world**")]
    assert conv.state["messages"][1]["runs"] == [run.pk] and conv.title == "Say hello"


async def test_stop_keeps_the_partial_answer_and_closes_the_upstream_request(owner, team, upstream, upstream_provider, chat_connect):
    upstream.script(CHAT, Reply.stream(chat_chunks(["Once", " upon", " a", " time"]), stall_after=3))
    client = await chat_connect(owner, team)
    await client.send(form(upstream_provider))
    await client.until("upon")
    await client.send({"action": "stop"})
    final = await client.until("data-run-button")
    await client.close()
    assert await asyncio.to_thread(upstream.wait_for_disconnect)
    (run,) = await runs()
    assert run.status == RunStatus.CANCELLED and run.output_text == "Once upon"
    assert "Once upon" in final and "Cancelled" in final
    conv = await conversation()
    assert conv.state["messages"][-1]["content"] == "Once upon"


async def test_closed_socket_cancels_the_run_after_the_grace_period(owner, team, upstream, upstream_provider, chat_connect):
    upstream.script(CHAT, Reply.stream(chat_chunks(["Once", " upon", " a", " time"]), stall_after=2))
    client = await chat_connect(owner, team)
    await client.send(form(upstream_provider))
    await client.until("Once")
    await client.close()  # the tab closed: nobody comes back within 0.3 s
    assert await asyncio.to_thread(upstream.wait_for_disconnect)
    for _ in range(100):
        (run,) = await runs()
        if run.status != RunStatus.RUNNING:
            break
        await asyncio.sleep(0.05)
    assert run.status == RunStatus.CANCELLED and run.output_text == "Once"
    for _ in range(100):  # the conversation is updated just after the run row
        conv = await conversation()
        if conv.state["messages"][-1]["content"]:
            break
        await asyncio.sleep(0.05)
    assert conv.state["messages"][-1]["content"] == "Once"


async def test_the_model_call_starts_before_the_turn_is_written(owner, team, upstream, upstream_provider, chat_connect, monkeypatch):
    # The turn's database trip waits for the first frame (here: up to 5 s), so the request
    # reaches the provider while there is no Run row yet; the row follows the first token.
    monkeypatch.setattr(live, "SAVE_WAIT_SECONDS", 5.0)
    upstream.script(CHAT, Reply.stream(chat_chunks(["Hi", " there"]), first_delay=0.5))
    client = await chat_connect(owner, team)
    await client.send(form(upstream_provider, draft="Say hi"))
    for _ in range(200):
        if upstream.requests_to("/v1/chat/completions"):
            break
        await asyncio.sleep(0.005)
    assert upstream.requests_to("/v1/chat/completions") and await runs() == []
    frames = await client.until("data-run-button")
    await client.close()
    (run,) = await runs()
    conv = await conversation()
    assert run.status == RunStatus.SUCCEEDED and run.output_text == "Hi there"
    assert conv.state["messages"][-1]["runs"] == [run.pk] and conv.state["messages"][-1]["content"] == "Hi there"
    assert f'id="conversation-id" value="{conv.pk}"' in frames


async def test_a_socket_closed_before_the_first_token_still_records_the_turn(owner, team, upstream, upstream_provider, chat_connect):
    upstream.script(CHAT, Reply.stream(chat_chunks(["Too", " late"]), first_delay=2.0))
    client = await chat_connect(owner, team)
    await client.send(form(upstream_provider, draft="Anyone there?"))
    await client.until("data-stop-button")
    await client.close()  # gone before any token, and not back within the grace period
    assert await asyncio.to_thread(upstream.wait_for_disconnect)
    for _ in range(100):
        found = await runs()
        if found and found[0].status != RunStatus.RUNNING:
            break
        await asyncio.sleep(0.05)
    (run,) = found
    assert run.status == RunStatus.CANCELLED and run.output_text == ""
    conv = await conversation()
    assert [m["content"] for m in conv.state["messages"]] == ["Anyone there?", ""]
    assert conv.state["messages"][-1]["runs"] == [run.pk]


async def test_a_reload_mid_stream_reattaches_and_the_run_finishes(owner, team, upstream, upstream_provider, chat_connect, settings):
    settings.CHAT_RECONNECT_GRACE_SECONDS = 5
    upstream.script(CHAT, Reply.stream(chat_chunks([f" w{i}" for i in range(12)]), delay=0.08))
    first = await chat_connect(owner, team)
    await first.send(form(upstream_provider))
    await first.until(" w1")
    await first.close()  # reload
    conv = await conversation()
    uid = conv.state["messages"][-1]["uid"]
    second = await chat_connect(owner, team, f"?conversation={conv.pk}&pending={uid}")
    snapshot = await second.until(f'id="m-{uid}"')
    assert " w0 w1" in snapshot and "data-stop-button" in snapshot  # the text so far, at once
    final = await second.until("data-run-button")
    await second.close()
    (run,) = await runs()
    assert run.status == RunStatus.SUCCEEDED and run.output_text == "".join(f" w{i}" for i in range(12))
    assert "w11" in final
    # And the page itself, loaded afterwards, shows the finished answer.
    conv = await conversation()
    assert conv.state["messages"][-1]["content"].endswith("w11")


async def test_upstream_error_mid_stream_keeps_the_partial_answer_and_shows_the_error(owner, team, upstream, upstream_provider, chat_connect):
    upstream.script(CHAT, Reply.stream(chat_chunks(["Part", "ial", " answer", " more"]), drop_after=3))
    client = await chat_connect(owner, team)
    await client.send(form(upstream_provider))
    final = await client.until("data-run-button")
    await client.close()
    (run,) = await runs()
    assert run.status == RunStatus.FAILED and run.output_text == "Partial"
    assert "Partial" in client.frames[-1] and "run-error" in client.frames[-1]
    assert run.error and run.error.split(".")[0] in final.replace("&#x27;", "'")


async def test_model_output_with_xss_payloads_is_inert(owner, team, upstream, upstream_provider, chat_connect):
    payload = ["<script>alert(1)</script>", " <img src=x onerror=alert(1)>", " [x](javascript:alert(1))"]
    upstream.script(CHAT, Reply.stream(chat_chunks(payload)))
    client = await chat_connect(owner, team)
    await client.send(form(upstream_provider))
    frames = await client.until("data-run-button")
    await client.close()
    assert "<script>alert" not in frames and "<img src=x" not in frames
    assert not re.search(r"<[^>]+\son\w+=", frames)
    assert 'href="javascript:' not in frames


async def test_run_with_no_messages_says_what_to_do(owner, team, upstream, upstream_provider, chat_connect):
    client = await chat_connect(owner, team)
    await client.send(form(upstream_provider, draft=""))
    frames = await client.until("chat-errors")
    await client.close()
    assert "Add a message first" in frames
    assert upstream.requests_to("/v1/chat/completions") == []


async def test_viewer_cannot_run(viewer, team, upstream, upstream_provider, chat_connect):
    client = await chat_connect(viewer, team)
    await client.send(form(upstream_provider))
    frames = await client.until("chat-errors")
    await client.close()
    assert "viewer" in frames and "cannot" in frames or "not run" in frames
    assert upstream.requests_to("/v1/chat/completions") == [] and await runs() == []


async def test_another_teams_provider_is_refused(owner, team, outsider, other_team, upstream, chat_connect):
    from apps.proxy.services import provider_save

    theirs = await sync_to_async(provider_save)(team=other_team, user=outsider, name="Theirs", base_url=upstream.url, api_key="sk-theirs")
    client = await chat_connect(owner, team)
    await client.send(form(theirs))
    frames = await client.until("chat-errors")
    await client.close()
    assert "does not exist in your team" in frames
    assert upstream.requests_to("/v1/chat/completions") == [] and await runs() == []


async def test_a_200_kb_message(owner, team, upstream, upstream_provider, chat_connect):
    big = "lorem ipsum dolor sit amet " * 7600  # ~200 kB, ~40k tokens
    assert len(big) > 200_000
    upstream.models = ["gpt-4", "gpt-4o-mini"]
    client = await chat_connect(owner, team)
    # gpt-4's 8k window: refused before sending, with the numbers.
    await client.send(form(upstream_provider, draft=big, model="gpt-4"))
    frames = await client.until("chat-errors")
    assert "context window" in frames and "Shorten the prompt" in frames
    assert upstream.requests_to("/v1/chat/completions") == []
    # gpt-4o-mini's 128k window: sent whole.
    await client.send(form(upstream_provider, draft=big))
    await client.until("data-run-button")
    await client.close()
    assert upstream.requests_to("/v1/chat/completions")[0].json["messages"][0]["content"] == big


async def test_regenerate_from_an_answer_replaces_it(owner, team, upstream, upstream_provider, chat_connect):
    upstream.script(CHAT, Reply.stream(chat_chunks(["Second", " try"])))
    client = await chat_connect(owner, team)
    data = with_messages(form(upstream_provider, draft="ignored"), [
        {"uid": "q1", "role": "user", "content": "Question"},
        {"uid": "a1", "role": "assistant", "content": "First try"},
        {"uid": "q2", "role": "user", "content": "Later"},
    ])
    data.update(action="regenerate", **{"from": "a1"})
    await client.send(data)
    frames = await client.until("data-run-button")
    await client.close()
    assert '<div id="m-a1" hx-swap-oob="delete">' in frames and '<div id="m-q2" hx-swap-oob="delete">' in frames
    sent = upstream.requests_to("/v1/chat/completions")[0].json["messages"]
    assert sent == [{"role": "user", "content": "Question"}]  # the draft is not sent on regenerate
    assert "Second try" in client.frames[-1]


async def test_few_shot_messages_and_system_are_sent_in_page_order(owner, team, upstream, upstream_provider, chat_connect):
    client = await chat_connect(owner, team)
    data = with_messages(form(upstream_provider, draft="3+3?", system="Answer with a number."), [
        {"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"},
    ])
    await client.send(data)
    await client.until("data-run-button")
    await client.close()
    assert upstream.requests_to("/v1/chat/completions")[0].json["messages"] == [
        {"role": "system", "content": "Answer with a number."},
        {"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}, {"role": "user", "content": "3+3?"},
    ]


async def test_parameters_are_sent_and_checked(owner, team, upstream, upstream_provider, chat_connect):
    client = await chat_connect(owner, team)
    await client.send(form(upstream_provider, temperature="0.2", top_p="0.9", max_tokens="50", stop="###\nEND",
                           presence_penalty="0.5", frequency_penalty="-0.5", seed="42"))
    await client.until("data-run-button")
    sent = upstream.requests_to("/v1/chat/completions")[0].json
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"], sent["stop"], sent["seed"]) == (0.2, 0.9, 50, ["###", "END"], 42)
    assert (sent["presence_penalty"], sent["frequency_penalty"]) == (0.5, -0.5)
    await client.send(form(upstream_provider, temperature="3"))
    frames = await client.until("chat-errors")
    await client.close()
    assert "Temperature must be between 0 and 2" in frames
