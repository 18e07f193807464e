"""Tools, structured output, logprobs, choices, compare, vision, code and saving."""
from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from apps.chat.models import Conversation
from apps.chat.render import column_key
from apps.chat.tests.conftest import form, with_messages
from apps.proxy.models import Run, RunStatus
from tests.upstream import Reply, chat_chunks, png_bytes, tool_call_chunks

pytestmark = pytest.mark.django_db(transaction=True)
CHAT = "POST /v1/chat/completions"
WEATHER = json.dumps([{"name": "get_weather", "description": "Weather for a city",
                       "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])


async def runs():
    return await sync_to_async(lambda: list(Run.objects.order_by("id")))()


async def answer_uid() -> str:
    """The uid of the conversation's last assistant message (its streaming elements' names)."""
    state = await sync_to_async(lambda: Conversation.objects.get().state)()
    return [m for m in state["messages"] if m["role"] == "assistant"][-1]["uid"]


async def test_tool_call_loop(owner, team, upstream, upstream_provider, chat_connect):
    upstream.script(CHAT, Reply.stream(tool_call_chunks("get_weather", '{"city": "Oslo"}', call_id="call_9")),
                    Reply.stream(chat_chunks(["It is 12°C in Oslo."])))
    client = await chat_connect(owner, team)
    await client.send(form(upstream_provider, draft="Weather in Oslo?", tools=WEATHER, tool_choice="get_weather",
                           parallel_tool_calls="", tool_results_json="on"))
    frames = await client.until("data-run-button")
    sent = upstream.requests_to("/v1/chat/completions")[0].json
    assert sent["tools"][0] == {"type": "function", "function": json.loads(WEATHER)[0]}
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False
    # The call streams, then shows as a card, followed by a result message to fill in.
    assert "get_weather(" in frames
    final = client.frames[-1]
    assert 'data-tool-call="call_9"' in final and "&quot;city&quot;: &quot;Oslo&quot;" in final
    assert 'name="tool_call_id" value="call_9"' in final and "Type the result of get_weather" in final
    conv = await sync_to_async(Conversation.objects.get)()
    assistant, tool = conv.state["messages"][1:]
    assert assistant["tool_calls"][0]["id"] == "call_9" and tool["role"] == "tool"

    # Continue: the result is not JSON -> refused, saying which call and how to fix it.
    calls = json.dumps(assistant["tool_calls"])
    page = [{"role": "user", "content": "Weather in Oslo?"}, {"uid": assistant["uid"], "role": "assistant", "content": "", "tool_calls": calls},
            {"uid": tool["uid"], "role": "tool", "content": "twelve degrees", "tool_call_id": "call_9"}]
    data = with_messages(form(upstream_provider, draft="", tools=WEATHER, tool_results_json="on", conversation=str(conv.pk)), page)
    await client.send(data)
    frames = await client.until("chat-errors")
    assert "The result of get_weather (call_9) is not valid JSON" in frames
    page[2]["content"] = '{"celsius": 12}'
    data = with_messages(form(upstream_provider, draft="", tools=WEATHER, tool_results_json="on", conversation=str(conv.pk)), page)
    await client.send(data)
    await client.until("data-run-button")
    await client.close()
    second = upstream.requests_to("/v1/chat/completions")[1].json["messages"]
    assert second[1]["tool_calls"][0]["id"] == "call_9" and second[2] == {"role": "tool", "tool_call_id": "call_9", "content": '{"celsius": 12}'}
    assert "12°C" in client.frames[-1]


async def test_invalid_tool_schema_is_refused(owner, team, upstream, upstream_provider, chat_connect):
    bad = json.dumps([{"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "strnig"}}}}])
    client = await chat_connect(owner, team)
    await client.send(form(upstream_provider, tools=bad))
    frames = await client.until("chat-errors")
    await client.send(form(upstream_provider, tools="[{"))
    frames2 = await client.until("chat-errors")
    await client.close()
    assert "Tool f: parameters is not a valid JSON Schema" in frames and 'data-field="tools"' in frames
    assert "Tools are not valid JSON" in frames2
    assert upstream.requests_to("/v1/chat/completions") == []


async def test_json_schema_answer_is_validated_and_pretty_printed(owner, team, upstream, upstream_provider, chat_connect):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}, "confidence": {"type": "number", "maximum": 1}},
              "required": ["answer", "confidence"]}
    upstream.script(CHAT, Reply.stream(chat_chunks(['{"answer":', ' "42", "confidence": 0.9}'])),
                    Reply.stream(chat_chunks(['{"answer": "x", "confidence": 7}'])))
    client = await chat_connect(owner, team)
    data = form(upstream_provider, response_format="json_schema", schema=json.dumps(schema), schema_name="result", schema_strict="on")
    await client.send(data)
    await client.until("data-run-button")
    good = client.frames[-1]
    await client.send(data)
    await client.until("data-run-button")
    bad = client.frames[-1]
    await client.close()
    sent = upstream.requests_to("/v1/chat/completions")[0].json
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {"name": "result", "schema": schema, "strict": True}}
    assert "matches the schema" in good and "&quot;answer&quot;: &quot;42&quot;,\n  &quot;confidence&quot;: 0.9" in good
    assert "Does not validate" in bad and "confidence: 7 is greater than the maximum of 1" in bad


async def test_logprobs_heat_map_and_choices_as_tabs(owner, team, upstream, upstream_provider, chat_connect):
    chunks = chat_chunks(["Hi", " there"], index=0, logprobs=True, finish_reason=None)
    chunks += chat_chunks(["Hello"], index=1, logprobs=True, finish_reason=None)
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
    chunks += [{**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}, {"index": 1, "delta": {}, "finish_reason": "stop"}]}]
    upstream.script(CHAT, Reply.stream(chunks))
    client = await chat_connect(owner, team)
    await client.send(form(upstream_provider, n="2", logprobs="on", top_logprobs="3"))
    await client.until("data-run-button")
    await client.close()
    sent = upstream.requests_to("/v1/chat/completions")[0].json
    assert (sent["n"], sent["logprobs"], sent["top_logprobs"]) == (2, True, 3)
    assert f'id="msg-{column_key(await answer_uid(), 0)}-1"' in client.frames[0]  # both choices stream
    final = client.frames[-1]
    assert "Choice 1" in final and "Choice 2" in final and "data-use-choice" in final
    assert 'class="lp lp-0"' in final and 'data-p="90.5"' in final  # logprob -0.1 -> 90.5%


async def test_compare_three_models_side_by_side(owner, team, upstream, upstream_provider, chat_connect):
    client = await chat_connect(owner, team)
    key = lambda m: f"{upstream_provider.pk}:{m}"  # noqa: E731
    data = form(upstream_provider, draft="Hi all", compare="on", col_model_key=[key("gpt-4o"), key("gpt-4o-mini")], col_temperature=["", "0.1"])
    await client.send(data)
    await client.until("data-run-button")
    all_runs = await runs()
    assert [r.model for r in all_runs] == ["gpt-4o-mini", "gpt-4o", "gpt-4o-mini"]
    assert len({r.group for r in all_runs}) == 1 and all_runs[0].group
    assert all(r.status == RunStatus.SUCCEEDED for r in all_runs)
    uid = await answer_uid()
    assert all(f'id="msg-{column_key(uid, i)}-0"' in client.frames[0] for i in range(3))
    final = client.frames[-1]
    assert final.count("data-pick") == 3 and "--cols: 3" in final and "gpt-4o-mini · t=0.1" in final
    assert final.count('class="stats"') == 3
    temps = [r.json.get("temperature") for r in upstream.requests_to("/v1/chat/completions")]
    assert sorted(temps, key=str) == sorted([None, None, 0.1], key=str)
    # Pick the second column: it becomes the assistant message to continue from.
    conv = await sync_to_async(Conversation.objects.get)()
    uid = conv.state["messages"][-1]["uid"]
    await client.send({"action": "pick", "from": uid, "run": str(all_runs[1].pk), "conversation": str(conv.pk)})
    picked = await client.until(f'id="m-{uid}"')
    await client.close()
    assert 'name="compare_turn" value="0"' in picked and all_runs[1].output_text in picked
    conv = await sync_to_async(Conversation.objects.get)()
    assert conv.state["messages"][-1]["content"] == all_runs[1].output_text and not conv.state["messages"][-1]["compare"]


async def test_compare_needs_a_second_column(owner, team, upstream, upstream_provider, chat_connect):
    client = await chat_connect(owner, team)
    await client.send(form(upstream_provider, compare="on", col_model_key=""))
    frames = await client.until("chat-errors")
    await client.close()
    assert "Compare needs at least one more column" in frames


# -- vision -----------------------------------------------------------------------------------------

def _upload(client, content, name="cat.png"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post("/chat/attach/", {"image": SimpleUploadedFile(name, content)})


def test_attach_refuses_what_is_not_an_image_or_too_big(editor_client):
    response = _upload(editor_client, b"%PDF-1.4 not an image", "doc.pdf")
    assert response.status_code == 400 and "doc.pdf is not an image" in response.json()["error"]
    response = _upload(editor_client, b"\x89PNG\r\n\x1a\n" + b"0" * (20 * 1024 * 1024 + 1), "huge.png")
    assert response.status_code == 400 and "at most 20 MB" in response.json()["error"]
    response = _upload(editor_client, png_bytes())
    assert response.status_code == 200 and response.json()["url"].startswith("/chat/attachments/")
    assert editor_client.get(response.json()["url"])["Content-Type"] == "image/png"


async def test_images_are_sent_as_data_urls_and_refused_by_models_without_vision(owner, team, upstream, upstream_provider, chat_connect, client):
    from apps.chat.services import attachment_create

    attachment = await sync_to_async(attachment_create)(team=team, user=owner, filename="cat.png", content=png_bytes())
    upstream.models = ["gpt-4o", "gpt-3.5-turbo", "mystery-model"]
    client_ws = await chat_connect(owner, team)
    await client_ws.send(form(upstream_provider, draft="What is this?", model="gpt-3.5-turbo", draft_images=str(attachment.pk)))
    frames = await client_ws.until("chat-errors")
    assert "gpt-3.5-turbo does not accept images" in frames
    assert upstream.requests_to("/v1/chat/completions") == []
    await client_ws.send(form(upstream_provider, draft="What is this?", model="gpt-4o", draft_images=str(attachment.pk)))
    await client_ws.until("data-run-button")
    # A model Playground knows nothing about: the upstream decides.
    await client_ws.send(form(upstream_provider, draft="And this?", model="mystery-model", draft_images=str(attachment.pk)))
    await client_ws.until("data-run-button")
    await client_ws.close()
    content = upstream.requests_to("/v1/chat/completions")[0].json["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "What is this?"}
    assert content[1]["type"] == "image_url" and content[1]["image_url"]["url"].startswith("data:image/png;base64,iVBOR")
    assert len(upstream.requests_to("/v1/chat/completions")) == 2


# -- page, code, save ---------------------------------------------------------------------------------

def test_page_renders_with_models_and_a_saved_conversation(owner_client, team, owner, upstream_provider):
    response = owner_client.get("/chat/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'ws-connect="/ws/chat/"' in body and f'value="{upstream_provider.pk}:gpt-4o-mini"' in body
    run = Run.objects.create(team=team, user=owner, capability="chat", model="gpt-4o-mini", status="succeeded",
                             output_text="**Hi**", output={"choices": [{"index": 0, "text": "**Hi**"}]}, prompt_tokens=5, completion_tokens=2)
    conv = Conversation.objects.create(team=team, user=owner, title="Greeting", state={
        "system": "Be brief.", "params": {"model_key": f"{upstream_provider.pk}:gpt-4o", "temperature": "0.3"},
        "messages": [{"uid": "a", "role": "user", "content": "Hello"}, {"uid": "b", "role": "assistant", "content": "**Hi**", "runs": [run.pk]}]})
    body = owner_client.get(f"/chat/{conv.pk}/").content.decode()
    assert "Be brief." in body and "<strong>Hi</strong>" in body and "5 in" in body
    assert f'value="{upstream_provider.pk}:gpt-4o" data-context-length' in body.replace("\n", " ") or f'{upstream_provider.pk}:gpt-4o"' in body
    assert 'value="0.3"' in body


def test_view_code_shows_the_request_with_the_key_in_an_environment_variable(editor_client, upstream_provider):
    response = editor_client.post("/chat/code/", {"model_key": f"{upstream_provider.pk}:gpt-4o-mini", "draft": "Hi", "temperature": "0.5",
                                                  "uid": [], "role": [], "content": []})
    body = response.content.decode()
    assert "sk-test-key-1234" not in body
    assert "TEST_UPSTREAM_API_KEY" in body and "client.chat.completions.create(" in body and "temperature=0.5" in body
    assert upstream_provider.base_url in body and "curl" in body and "new OpenAI(" in body


def test_save_as_prompt(editor_client, team, upstream_provider):
    from apps.prompts.models import PromptVersion

    response = editor_client.post("/chat/save/", {"model_key": f"{upstream_provider.pk}:gpt-4o-mini", "draft": "Hi", "system": "Be kind.",
                                                  "temperature": "0.5", "tools": WEATHER, "parallel_tool_calls": "on"}, HTTP_HX_PROMPT="Greeter")
    assert "Saved as <strong>Greeter</strong> v1" in response.content.decode()
    version = PromptVersion.objects.get()
    assert version.prompt.team == team and version.model == "gpt-4o-mini" and version.provider == upstream_provider
    assert version.messages == [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}]
    assert version.params == {"temperature": 0.5} and version.tools[0]["function"]["name"] == "get_weather"


def test_validate_as_you_type(editor_client):
    ok = editor_client.post("/chat/validate/?kind=tools", {"tools": WEATHER}).content.decode()
    assert "1 function: get_weather" in ok and 'data-tool-names="get_weather"' in ok
    bad = editor_client.post("/chat/validate/?kind=schema", {"schema": '{"type": 5}'}).content.decode()
    assert "not a valid JSON Schema" in bad


async def test_parameters_a_known_model_does_not_take_are_refused_with_the_reason(team, upstream, upstream_provider):
    from apps.chat.services import ChatInputError, chat_plan

    upstream.models = ["gpt-5", "gpt-3.5-turbo-instruct", "mystery-model"]
    with pytest.raises(ChatInputError, match="gpt-5 is a reasoning model and does not take temperature"):
        await chat_plan(team=team, data=form(upstream_provider, model="gpt-5", temperature="0.2"))
    plan = await chat_plan(team=team, data=form(upstream_provider, model="gpt-5", max_tokens="100"))
    assert plan.columns[0].request["max_completion_tokens"] == 100 and "max_tokens" not in plan.columns[0].request
    with pytest.raises(ChatInputError, match="gpt-5 does not return logprobs"):
        await chat_plan(team=team, data=form(upstream_provider, model="gpt-5", logprobs="on"))
    with pytest.raises(ChatInputError, match="does not support function calling"):
        await chat_plan(team=team, data=form(upstream_provider, model="gpt-3.5-turbo-instruct", tools=WEATHER))
    # Unknown models: the upstream decides.
    plan = await chat_plan(team=team, data=form(upstream_provider, model="mystery-model", logprobs="on", tools=WEATHER))
    assert plan.columns[0].request["logprobs"] is True
