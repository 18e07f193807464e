"""/v1 with the official openai SDK as the client, against a live ASGI server and the test upstream."""
from __future__ import annotations

import time

import httpx
import openai
import pytest
from django.core.cache import cache

from apps.accounts.services import api_token_create, api_token_revoke
from apps.proxy.models import Run, RunSource, RunStatus
from tests.upstream import Reply, chat_chunks, png_bytes, wav_bytes


pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client(v1_url, raw_token):
    return openai.OpenAI(base_url=v1_url, api_key=raw_token, max_retries=0, timeout=20)


def _last_run(**filters) -> Run:
    return Run.objects.filter(**filters).order_by("-id").first()


def _last_run_finished(timeout: float = 5.0) -> Run | None:
    """The newest Run once written and finished: a streamed /v1 call writes its row while
    the answer streams, so a client that hung up early can be ahead of the row."""
    deadline = time.monotonic() + timeout
    while True:
        run = _last_run()
        if (run is not None and run.status != RunStatus.RUNNING) or time.monotonic() > deadline:
            return run
        time.sleep(0.02)


# -- models -----------------------------------------------------------------------------------

def test_models_lists_every_provider_model_with_owner(client, upstream):
    models = client.models.list()
    ids = {m.id: m.owned_by for m in models.data}
    assert ids["gpt-4o-mini"] == "Test upstream"
    assert "text-embedding-3-small" in ids
    assert client.models.retrieve("gpt-4o").owned_by == "Test upstream"


# -- chat -------------------------------------------------------------------------------------

def test_chat_non_streaming_records_a_v1_run(client, upstream, owner):
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello there"}])
    assert reply.choices[0].message.content == "Echo: Say hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens == 10
    run = _last_run()
    assert run.source == RunSource.API and run.status == RunStatus.SUCCEEDED
    assert run.user == owner and run.capability == "chat"
    assert run.output_text == "Echo: Say hello there"
    assert run.provider_name == "Test upstream"
    sent = upstream.requests_to("/v1/chat/completions")[-1].json
    assert sent["model"] == "gpt-4o-mini" and sent["messages"][0]["content"] == "Say hello there"


def test_chat_streaming_passes_chunks_through(client, upstream):
    pieces = [f"p{i} " for i in range(30)]
    upstream.script("POST /v1/chat/completions", Reply.stream(chat_chunks(pieces, usage={"prompt_tokens": 3, "completion_tokens": 30, "total_tokens": 33})))
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "go"}], stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(pieces)
    assert chunks[-1].choices[0].finish_reason == "stop"
    # The client did not ask for usage: the usage-only chunk is not passed on.
    assert all(c.choices for c in chunks)
    run = _last_run_finished()
    assert run.status == RunStatus.SUCCEEDED and run.output_text == "".join(pieces)
    assert run.completion_tokens == 30 and run.source == RunSource.API


def test_chat_streaming_usage_when_asked(client, upstream):
    chunks = list(client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "a b"}], stream=True, stream_options={"include_usage": True},
    ))
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_explicit_provider_prefix_routes_to_that_provider(client, upstream):
    reply = client.chat.completions.create(model="Test upstream/gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert reply.choices[0].message.content == "Echo: x"
    assert upstream.requests_to("/v1/chat/completions")[-1].json["model"] == "gpt-4o"


def test_upstream_failure_before_stream_is_an_http_error(client, upstream):
    upstream.script("POST /v1/chat/completions", Reply.error(400, "This model's maximum context length is 10 tokens", code="context_length_exceeded"))
    with pytest.raises(openai.BadRequestError) as caught:
        list(client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True))
    assert caught.value.body["code"] == "context_length_exceeded"
    assert _last_run_finished().status == RunStatus.FAILED


def test_stream_dropped_midway_ends_with_error_event(client, upstream):
    upstream.script("POST /v1/chat/completions", Reply.stream(chat_chunks(["a", "b", "c", "d"]), drop_after=3))
    received = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "ab"
    run = _last_run_finished()
    assert run.status == RunStatus.FAILED and run.output_text == "ab"


def test_client_disconnect_stops_the_upstream_request(v1_url, raw_token, upstream):
    """Closing the connection mid-stream must close the upstream request and keep the partial output."""
    upstream.script("POST /v1/chat/completions", Reply.stream(chat_chunks([f"w{i} " for i in range(10)]), stall_after=4, stall_seconds=10))
    received = []
    with httpx.Client(timeout=10) as http:
        with http.stream("POST", f"{v1_url}/chat/completions", headers={"authorization": f"Bearer {raw_token}"},
                         json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": True}) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: "):
                    received.append(line)
                if len(received) == 4:
                    break
    assert upstream.wait_for_disconnect(timeout=5), "the upstream request was not closed after the client left"
    run = _last_run_finished()
    assert run.status == RunStatus.CANCELLED
    assert run.output_text == "w0 w1 w2 "


# -- completions and embeddings -------------------------------------------------------------------

def test_completions_stream_and_non_stream(client, upstream):
    reply = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Once")
    assert reply.choices[0].text == " once upon a time"
    streamed = "".join(c.choices[0].text for c in client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Once", stream=True) if c.choices)
    assert streamed == " once upon a time"
    assert _last_run().capability == "completion"


def test_embeddings(client, upstream):
    result = client.embeddings.create(model="text-embedding-3-small", input=["one", "two"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 8
    run = _last_run()
    assert run.capability == "embeddings" and run.source == RunSource.API and run.status == RunStatus.SUCCEEDED
    assert run.output == {"count": 2, "dimensions": 8}


# -- audio and images (through the test upstream) -------------------------------------------------

def test_speech_returns_audio_bytes(client, upstream):
    audio = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello there", response_format="wav")
    assert audio.content[:4] == b"RIFF"
    assert audio.response.headers["content-type"] == "audio/wav"
    assert _last_run().capability == "speech"


def test_transcription_and_translation_multipart(client, upstream):
    text = client.audio.transcriptions.create(model="whisper-1", file=("hello.wav", wav_bytes(), "audio/wav"))
    assert text.text == "hello from upstream"
    sent = upstream.requests_to("/v1/audio/transcriptions")[-1]
    assert b"hello.wav" in sent.body
    translated = client.audio.translations.create(model="whisper-1", file=("hola.wav", wav_bytes(), "audio/wav"))
    assert translated.text == "hello from upstream"
    assert _last_run().capability == "translation"


def test_images_generate_edit_variation(client, upstream):
    generated = client.images.generate(model="dall-e-2", prompt="a green square", n=2, response_format="b64_json")
    assert len(generated.data) == 2 and generated.data[0].b64_json
    edited = client.images.edit(model="dall-e-2", image=("a.png", png_bytes(), "image/png"), prompt="make it blue")
    assert edited.data[0].b64_json
    varied = client.images.create_variation(model="dall-e-2", image=("a.png", png_bytes(), "image/png"))
    assert varied.data[0].b64_json
    runs = list(Run.objects.filter(capability="image", source=RunSource.API).order_by("id"))
    assert len(runs) == 3
    # Priced per image: two at dall-e-2's default 1024x1024 ($0.020 each), then one each.
    assert [str(run.cost) for run in runs] == ["0.040000", "0.020000", "0.020000"]


def test_image_cost_follows_size(client, upstream):
    client.images.generate(model="dall-e-2", prompt="small", size="256x256", n=3, response_format="b64_json")
    assert str(_last_run().cost) == "0.048000"


# -- errors in OpenAI's shape --------------------------------------------------------------------

def _assert_openai_error(body: dict, code: str) -> None:
    assert set(body) >= {"message", "type", "param", "code"}, body
    assert body["code"] == code and body["message"]


def test_bad_token_is_401(v1_url, raw_token, upstream):
    bad = openai.OpenAI(base_url=v1_url, api_key="pgk-not-a-real-token", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.models.list()
    _assert_openai_error(caught.value.body, "invalid_api_key")
    assert caught.value.body["type"] == "authentication_error"


def test_missing_token_is_401(v1_url, upstream, raw_token):
    response = httpx.post(f"{v1_url}/chat/completions", json={"model": "gpt-4o-mini", "messages": []})
    assert response.status_code == 401
    _assert_openai_error(response.json()["error"], "missing_api_key")


def test_revoked_token_is_401(client, team, owner, upstream):
    assert client.models.list().data
    from apps.accounts.models import ApiToken

    api_token_revoke(token=ApiToken.objects.get(team=team, user=owner))
    with pytest.raises(openai.AuthenticationError) as caught:
        client.models.list()
    _assert_openai_error(caught.value.body, "invalid_api_key")


def test_unknown_model_is_404(client, upstream):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    _assert_openai_error(caught.value.body, "model_not_found")
    assert caught.value.body["param"] == "model"
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    "body,param,words",
    [
        ({"model": "gpt-4o-mini", "messages": []}, "messages", "empty"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role", "unknown role"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model", "required"),
        ({"model": "gpt-4o-mini", "messages": "hello"}, "messages", "must be a list"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature", "number"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens", "at least 1"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user"}]}, "messages[0].content", "no 'content'"),
    ],
)
def test_bad_chat_input_is_400_before_any_provider_call(v1_url, raw_token, upstream, body, param, words):
    response = httpx.post(f"{v1_url}/chat/completions", json=body, headers={"authorization": f"Bearer {raw_token}"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    _assert_openai_error(error, "bad_request")
    assert error["param"] == param and words in error["message"]
    assert error["type"] == "invalid_request_error"
    assert not upstream.requests_to("/v1/chat/completions")
    assert not Run.objects.exists()


def test_bad_input_through_the_sdk(client, upstream):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert caught.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="text-embedding-3-small", input="")
    with pytest.raises(openai.BadRequestError):
        client.audio.speech.create(model="tts-1", voice="alloy", input="   ")


def test_not_json_and_unknown_path_and_method(v1_url, raw_token, upstream):
    headers = {"authorization": f"Bearer {raw_token}"}
    response = httpx.post(f"{v1_url}/chat/completions", content=b"{not json", headers=headers)
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]
    response = httpx.get(f"{v1_url}/chat/completions", headers=headers)
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"
    response = httpx.get(f"{v1_url}/assistants", headers=headers)
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_url"


def test_viewer_token_can_list_but_not_run(v1_url, team, viewer, upstream_provider, upstream):
    cache.clear()
    raw = api_token_create(user=viewer, team=team, name="viewer")[1]
    client = openai.OpenAI(base_url=v1_url, api_key=raw, max_retries=0)
    assert client.models.list().data
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert "viewer" in caught.value.body["message"]


def test_rate_limit_per_token_is_429_with_retry_after(v1_url, raw_token, upstream, settings):
    settings.V1_RATE_LIMIT = 2
    settings.V1_RATE_LIMIT_WINDOW = 30
    headers = {"authorization": f"Bearer {raw_token}"}
    statuses = [httpx.get(f"{v1_url}/models", headers=headers).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    response = httpx.get(f"{v1_url}/models", headers=headers)
    assert response.status_code == 429 and 1 <= int(response.headers["retry-after"]) <= 31
    _assert_openai_error(response.json()["error"], "rate_limit_exceeded")
    assert response.json()["error"]["type"] == "rate_limit_error"
