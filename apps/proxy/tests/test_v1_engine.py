"""/v1 against the embedded local engine, with its real models, through the official openai SDK."""
from __future__ import annotations

import re
import threading
import time

import openai
import pytest
from django.core.cache import cache

from apps.accounts.services import api_token_create
from apps.proxy.models import Run, RunSource, RunStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CHAT = "smollm2-135m-instruct"
COMPLETION = "gemma-3-270m"
EMBEDDINGS = "multilingual-e5-small"
STT = "whisper-tiny.en"
TTS = "piper-joe-medium"


@pytest.fixture
def client(live_asgi, team, owner):
    cache.clear()
    raw = api_token_create(user=owner, team=team, name="sdk")[1]
    return openai.OpenAI(base_url=live_asgi.url + "/v1", api_key=raw, max_retries=0, timeout=120)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def test_engine_models_are_listed(client):
    owners = {m.id: m.owned_by for m in client.models.list().data}
    for model in (CHAT, COMPLETION, EMBEDDINGS, STT, TTS):
        assert owners.get(model) == "Local engine", owners


def test_engine_chat_stream_and_non_stream(client):
    reply = client.chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": "What is the capital of France?"}], max_tokens=16, temperature=0, seed=1,
    )
    text = reply.choices[0].message.content
    assert text and reply.usage.completion_tokens > 0
    chunks = list(client.chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": "What is the capital of France?"}], max_tokens=16, temperature=0, seed=1,
        stream=True,
    ))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text  # greedy decoding: the same answer both ways
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    run = Run.objects.filter(model=CHAT).order_by("-id").first()
    assert run.source == RunSource.API and run.status == RunStatus.SUCCEEDED and run.output_text == text


def test_engine_completion(client):
    reply = client.completions.create(model=COMPLETION, prompt="The sky is", max_tokens=8, temperature=0)
    assert reply.choices[0].text.strip()
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=COMPLETION, prompt="The sky is", max_tokens=8, temperature=0, stream=True) if c.choices)
    assert streamed == reply.choices[0].text


def test_engine_embeddings(client):
    result = client.embeddings.create(model=EMBEDDINGS, input=["a cat sat on the mat", "a kitten on a rug", "stock prices fell"])
    vectors = [d.embedding for d in result.data]
    assert [len(v) for v in vectors] == [384, 384, 384]

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b)) / (sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5)

    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])


def test_engine_text_to_speech_then_speech_to_text_round_trip(client):
    sentence = "The quick brown fox jumps over the lazy dog."
    audio = client.audio.speech.create(model=TTS, voice="joe", input=sentence, response_format="wav")
    assert audio.response.headers["content-type"].startswith("audio/")
    wav = audio.content
    assert wav[:4] == b"RIFF" and len(wav) > 10_000
    heard = client.audio.transcriptions.create(model=STT, file=("spoken.wav", wav, "audio/wav"))
    assert _words(heard.text) == _words(sentence)
    assert Run.objects.filter(capability="speech", source=RunSource.API, status=RunStatus.SUCCEEDED).exists()
    assert Run.objects.filter(capability="transcription", source=RunSource.API, output_text=heard.text).exists()


def test_engine_cannot_make_images_and_says_so(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model=CHAT, prompt="a cat")
    body = caught.value.body
    assert body["code"] == "not_supported" and "image" in body["message"].lower()
    assert set(body) >= {"message", "type", "param", "code"}


def _rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_twenty_concurrent_chat_streams_all_finish_in_order(client):
    """Sent one after another (staggered), served by the one engine slot in arrival order,
    with the server's memory flat (it runs in this process)."""
    client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "Hi"}], max_tokens=2)  # model loaded
    rss_before = _rss_mb()
    count = 20
    first_content: dict[int, float] = {}
    texts: dict[int, str] = {}
    errors: list[BaseException] = []

    def one(number: int) -> None:
        try:
            parts = []
            for chunk in client.chat.completions.create(
                model=CHAT, messages=[{"role": "user", "content": f"Say the number {number}."}], max_tokens=6,
                temperature=0, stream=True,
            ):
                if chunk.choices and chunk.choices[0].delta.content:
                    first_content.setdefault(number, time.monotonic())
                    parts.append(chunk.choices[0].delta.content)
            texts[number] = "".join(parts)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = []
    for number in range(count):
        thread = threading.Thread(target=one, args=(number,))
        thread.start()
        threads.append(thread)
        time.sleep(0.15)  # a defined arrival order
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    assert sorted(texts) == list(range(count)) and all(texts.values())
    order = sorted(first_content, key=first_content.get)
    assert order == list(range(count)), order
    runs = list(Run.objects.filter(model=CHAT, source=RunSource.API))  # the 20 and the warm-up
    assert len(runs) == count + 1 and all(r.status == RunStatus.SUCCEEDED for r in runs)
    assert _rss_mb() - rss_before < 80, f"memory grew by {_rss_mb() - rss_before:.0f} MB over {count} streams"
