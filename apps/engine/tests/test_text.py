"""Chat and completions on the real local models (SmolLM2 135M, Gemma 3 270M)."""
from __future__ import annotations

import json

import jsonschema
import pytest
from asgiref.sync import sync_to_async

from apps.engine.provider import LocalEngineProvider
from apps.proxy import services
from apps.proxy.errors import ProxyError
from apps.proxy.models import Provider, Run, RunStatus
from apps.proxy.providers.base import QueuePosition

CHAT_MODEL = "smollm2-135m-instruct"
COMPLETION_MODEL = "gemma-3-270m"


class _Row:
    """A provider row without the database: the engine only reads team_id and name."""

    team_id = 0
    name = "Local engine"


@pytest.fixture
def engine():
    return LocalEngineProvider(_Row())


def chat_request(text="Say hello in five words.", **params):
    return {"model": CHAT_MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": 16, **params}


async def collect(stream):
    return [event async for event in stream]


def chat_text(events, index=0):
    return "".join(
        c.get("delta", {}).get("content") or ""
        for e in events if isinstance(e, dict)
        for c in e["choices"] if c["index"] == index
    )


def finish_reasons(events):
    return {c["index"]: c["finish_reason"] for e in events if isinstance(e, dict) for c in e["choices"] if c.get("finish_reason")}


async def error_of(stream) -> ProxyError:
    with pytest.raises(ProxyError) as info:
        await collect(stream)
    return info.value


# -- chat ---------------------------------------------------------------------------------------

async def test_chat_streams_openai_chunks_and_usage(engine):
    events = await collect(engine.chat(chat_request(temperature=0)))
    chunks = [e for e in events if isinstance(e, dict)]
    assert chunks[0]["object"] == "chat.completion.chunk"
    assert chunks[0]["model"] == CHAT_MODEL
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = chat_text(events)
    assert len(text.strip()) > 3
    assert finish_reasons(events)[0] in ("stop", "length")
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert usage["prompt_tokens"] > 10
    assert 0 < usage["completion_tokens"] <= 16
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert len({c["id"] for c in chunks}) == 1


@pytest.mark.django_db(transaction=True)
async def test_chat_through_stream_start_records_the_run(team, owner):
    provider = await sync_to_async(Provider.objects.get)(team=team, kind="local")
    stream = await services.stream_start(team=team, user=owner, provider=provider, request=chat_request(temperature=0))
    async with stream:
        async for _ in stream:
            pass
    run = await sync_to_async(Run.objects.get)(pk=stream.run.pk)
    assert run.status == RunStatus.SUCCEEDED
    assert run.output_text == stream.acc.text() and run.output_text.strip()
    assert run.prompt_tokens > 10 and 0 < run.completion_tokens <= 16
    assert not run.usage_counted  # exact usage from the model's own tokenizer
    assert run.ttft_ms is not None and run.total_ms >= run.ttft_ms
    result = stream.result()
    assert result["choices"][0]["message"]["content"] == run.output_text


async def test_n_two_gives_two_indexed_choices(engine):
    events = await collect(engine.chat(chat_request(n=2, seed=7, temperature=1.0, max_tokens=8)))
    assert set(finish_reasons(events)) == {0, 1}
    assert chat_text(events, 0) and chat_text(events, 1)
    usage = [e for e in events if isinstance(e, dict)][-1]["usage"]
    assert usage["completion_tokens"] <= 16


async def test_logprobs_have_the_openai_chat_shape(engine):
    events = await collect(engine.chat(chat_request(logprobs=True, top_logprobs=3, max_tokens=5, temperature=0)))
    entries = [lp for e in events for c in e["choices"] if (c.get("logprobs") or {}).get("content") for lp in c["logprobs"]["content"]]
    assert len(entries) >= 1
    for entry in entries:
        assert set(entry) == {"token", "logprob", "bytes", "top_logprobs"}
        assert entry["logprob"] <= 0
        assert bytes(entry["bytes"]).decode("utf-8", errors="replace") == entry["token"]
        assert len(entry["top_logprobs"]) == 3
        assert entry["top_logprobs"][0]["logprob"] >= entry["top_logprobs"][-1]["logprob"]
    # Greedy: the chosen token is the most likely one.
    assert entries[0]["token"] == entries[0]["top_logprobs"][0]["token"]
    assert "".join(e["token"] for e in entries) == chat_text(events)


async def test_same_seed_and_temperature_give_the_same_text(engine):
    request = chat_request("Write a short poem about rain.", seed=1234, temperature=0.9, max_tokens=10)
    first = chat_text(await collect(engine.chat(request)))
    second = chat_text(await collect(engine.chat(request)))
    assert first == second and first.strip()


async def test_json_schema_output_parses_and_validates(engine):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    request = chat_request(
        "Invent a person with a name and an age.",
        max_tokens=60,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
    )
    data = json.loads(chat_text(await collect(engine.chat(request))))
    jsonschema.validate(data, schema)


async def test_json_schema_bounds_hold_where_the_model_would_break_them(engine):
    # llama.cpp's own converter ignores minimum/maximum: asked for a percentage, SmolLM2
    # wrote "confidence": 100 against a 0-1 schema. The engine's grammar enforces them.
    schema = {
        "type": "object",
        "properties": {
            "rating": {"type": "integer", "minimum": 1, "maximum": 5},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["rating", "confidence"],
        "additionalProperties": False,
    }
    for temperature, seed in ((0, 1), (1.0, 7), (1.0, 8)):
        request = chat_request(
            "Rate the film 10 out of 10, and say how sure you are as a percentage, like 100.",
            max_tokens=60, temperature=temperature, seed=seed,
            response_format={"type": "json_schema", "json_schema": {"name": "review", "schema": schema}},
        )
        data = json.loads(chat_text(await collect(engine.chat(request))))
        jsonschema.validate(data, schema)


async def test_json_object_output_parses(engine):
    request = chat_request("Give a JSON object with a cat's name.", max_tokens=40, temperature=0, response_format={"type": "json_object"})
    events = await collect(engine.chat(request))
    text = chat_text(events)
    assert text.lstrip().startswith("{")
    if finish_reasons(events)[0] == "stop":  # the grammar closed the object
        assert isinstance(json.loads(text), dict)


async def test_invalid_json_schema_is_refused(engine):
    request = chat_request(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "objekt"}}})
    error = await error_of(engine.chat(request))
    assert error.status == 400 and "not valid JSON Schema" in error.message


async def test_stop_sequence_ends_the_text_before_it(engine):
    request = chat_request("Count from 1 to 10, separated by commas.", max_tokens=40, temperature=0)
    full = chat_text(await collect(engine.chat(request)))
    assert "5" in full
    events = await collect(engine.chat({**request, "stop": ["5"]}))
    text = chat_text(events)
    assert text == full[: full.index("5")]
    assert finish_reasons(events)[0] == "stop"


async def test_forced_tool_call_is_valid(engine):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    request = chat_request("What's the weather in Paris?", max_tokens=40, temperature=0, tools=tools, tool_choice="required")
    events = await collect(engine.chat(request))
    calls = [tc for e in events for c in e["choices"] for tc in (c["delta"].get("tool_calls") or [])]
    assert calls[0]["function"]["name"] == "get_weather"
    assert "city" in json.loads(calls[0]["function"]["arguments"])
    assert finish_reasons(events)[0] == "tool_calls"


async def test_tool_choice_auto_says_what_to_do(engine):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    error = await error_of(engine.chat(chat_request(tools=tools)))
    assert error.code == "not_supported" and error.param == "tool_choice" and "required" in error.message


# -- bad input ----------------------------------------------------------------------------------

async def test_unsupported_parameter_is_named(engine):
    error = await error_of(engine.chat(chat_request(logit_bias={"50256": -100})))
    assert (error.code, error.status, error.param) == ("not_supported", 400, "logit_bias")


async def test_empty_messages(engine):
    error = await error_of(engine.chat({"model": CHAT_MODEL, "messages": []}))
    assert error.status == 400 and error.param == "messages" and "empty" in error.message


async def test_unknown_role(engine):
    error = await error_of(engine.chat({"model": CHAT_MODEL, "messages": [{"role": "wizard", "content": "hi"}]}))
    assert error.status == 400 and "wizard" in error.message and error.param == "messages[0].role"


async def test_max_tokens_above_the_window(engine):
    error = await error_of(engine.chat(chat_request(max_tokens=100_000)))
    assert error.code == "context_length_exceeded" and "8,192" in error.message and "100,000" in error.message


async def test_prompt_longer_than_the_window_gives_counts(engine):
    error = await error_of(engine.chat(chat_request("word " * 9000, max_tokens=None)))
    assert error.code == "context_length_exceeded" and error.status == 400
    assert "8,192-token context window" in error.message
    assert "The prompt is 9," in error.message  # counted with the model's own tokenizer


async def test_prompt_plus_max_tokens_over_the_window(engine):
    error = await error_of(engine.chat(chat_request("word " * 8000, max_tokens=1000)))
    assert error.code == "context_length_exceeded" and "Lower max_tokens to" in error.message


async def test_images_name_the_provider_to_add(engine):
    with pytest.raises(ProxyError) as info:
        await engine.image_generate({"model": "dall-e-3", "prompt": "a cat"})
    assert info.value.code == "not_supported" and "OpenAI" in info.value.message


async def test_wrong_model_for_the_endpoint(engine):
    error = await error_of(engine.chat({"model": COMPLETION_MODEL, "messages": [{"role": "user", "content": "hi"}]}))
    assert error.param == "model" and CHAT_MODEL in error.message


# -- completions --------------------------------------------------------------------------------

async def test_completion_with_gemma(engine):
    events = await collect(engine.completion({"model": COMPLETION_MODEL, "prompt": "The Eiffel Tower is in the city of", "max_tokens": 3, "temperature": 0}))
    assert events[0]["object"] == "text_completion"
    text = "".join(c["text"] for e in events for c in e["choices"])
    assert "Paris" in text
    assert events[-1]["usage"]["completion_tokens"] <= 3


async def test_completion_legacy_logprobs_shape(engine):
    events = await collect(engine.completion({"model": COMPLETION_MODEL, "prompt": "One, two,", "max_tokens": 4, "logprobs": 2, "temperature": 0}))
    shaped = [c["logprobs"] for e in events for c in e["choices"] if c.get("logprobs")]
    assert shaped
    first = shaped[0]
    assert set(first) == {"tokens", "token_logprobs", "top_logprobs", "text_offset"}
    assert len(first["top_logprobs"][0]) == 2
    assert first["text_offset"][0] == len("One, two,")


@pytest.mark.django_db(transaction=True)
async def test_completion_through_stream_start(team, owner):
    provider = await sync_to_async(Provider.objects.get)(team=team, kind="local")
    request = {"model": COMPLETION_MODEL, "prompt": "Once upon a time", "max_tokens": 6}
    stream = await services.stream_start(team=team, user=owner, provider=provider, request=request, kind="completion")
    async with stream:
        async for _ in stream:
            pass
    run = await sync_to_async(Run.objects.get)(pk=stream.run.pk)
    assert run.status == RunStatus.SUCCEEDED and run.output_text and run.completion_tokens <= 6


async def test_queue_position_events_are_not_chunks(engine):
    events = await collect(engine.chat(chat_request(max_tokens=2)))
    assert all(isinstance(e, (dict, QueuePosition)) for e in events)


async def test_completion_of_two_prompts_without_max_tokens_limit(engine):
    request = {"model": COMPLETION_MODEL, "prompt": ["One, two,", "Roses are red,"], "max_tokens": 3, "temperature": 0}
    events = await collect(engine.completion(request))
    indexes = {c["index"] for e in events for c in e["choices"] if c.get("finish_reason")}
    assert indexes == {0, 1}
