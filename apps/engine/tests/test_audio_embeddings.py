"""Embeddings (multilingual-e5-small), text to speech (Piper joe) and speech to text (Whisper tiny.en)."""
from __future__ import annotations

import base64
import io
import re
import wave

import numpy as np
import pytest

from apps.engine.provider import LocalEngineProvider
from apps.proxy.errors import ProxyError
from apps.proxy.providers.base import Upload
from tests.speech_round_trip import SENTENCE, heard_back, words


class _Row:
    team_id = 0
    name = "Local engine"


@pytest.fixture
def engine():
    return LocalEngineProvider(_Row())


_spoken: dict = {}


async def speak(engine, text=SENTENCE, **params):
    """Synthesised audio; the default sentence is spoken once per format and reused (keeps the suite fast)."""
    key = (text, tuple(sorted(params.items())))
    if text == SENTENCE and key in _spoken:
        return _spoken[key]
    result = await engine.speech({"model": "piper-joe-medium", "input": text, "voice": "joe", "response_format": "wav", **params})
    if text == SENTENCE:
        _spoken[key] = result
    return result


async def transcribe(engine, audio: bytes, filename="speech.wav", **params):
    return await engine.transcription(Upload(filename, audio, "audio/wav"), {"model": "whisper-tiny.en", **params})


# -- embeddings ----------------------------------------------------------------------------------

async def test_embeddings_are_384_normalised_and_meaningful(engine):
    texts = ["The cat sits on the mat.", "A kitten is sitting on a rug.", "Quarterly revenue grew by 12 percent."]
    result = await engine.embeddings({"model": "multilingual-e5-small", "input": texts})
    assert result["object"] == "list" and result["model"] == "multilingual-e5-small"
    vectors = np.array([d["embedding"] for d in result["data"]])
    assert vectors.shape == (3, 384)
    assert [d["index"] for d in result["data"]] == [0, 1, 2]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > unrelated
    assert result["usage"]["prompt_tokens"] == result["usage"]["total_tokens"] > 10


async def test_embeddings_base64_matches_float(engine):
    plain = await engine.embeddings({"model": "multilingual-e5-small", "input": "hello world"})
    packed = await engine.embeddings({"model": "multilingual-e5-small", "input": "hello world", "encoding_format": "base64"})
    decoded = np.frombuffer(base64.b64decode(packed["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, plain["data"][0]["embedding"], atol=1e-6)


@pytest.mark.parametrize(
    ("request_extra", "param"),
    [({"input": ""}, "input"), ({"input": []}, "input"), ({"input": "x", "dimensions": 256}, "dimensions"), ({"input": [[1, 2]]}, "input")],
)
async def test_embeddings_bad_input(engine, request_extra, param):
    with pytest.raises(ProxyError) as info:
        await engine.embeddings({"model": "multilingual-e5-small", **request_extra})
    assert info.value.status == 400 and info.value.param == param


async def test_embeddings_input_over_512_tokens(engine):
    with pytest.raises(ProxyError) as info:
        await engine.embeddings({"model": "multilingual-e5-small", "input": ["short", "word " * 600]})
    assert info.value.code == "context_length_exceeded" and "input[1]" in info.value.message and "512" in info.value.message


# -- text to speech ------------------------------------------------------------------------------

async def test_speech_is_a_wav_of_plausible_duration(engine):
    result = await speak(engine)
    assert result.content_type == "audio/wav" and result.format == "wav"
    with wave.open(io.BytesIO(result.audio)) as wav:
        seconds = wav.getnframes() / wav.getframerate()
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
    # Nine words spoken: somewhere between 1.5 and 6 seconds.
    assert 1.5 < seconds < 6
    assert result.duration_s == pytest.approx(seconds, abs=0.01)


async def test_speed_changes_the_length(engine):
    normal = await speak(engine, "One two three four five six.")
    fast = await speak(engine, "One two three four five six.", speed=2.0)
    assert fast.duration_s < normal.duration_s * 0.7


@pytest.mark.parametrize(("fmt", "magic", "content_type"), [("mp3", (b"ID3", b"\xff\xfb"), "audio/mpeg"), ("opus", (b"OggS",), "audio/ogg"), ("flac", (b"fLaC",), "audio/flac")])
async def test_compressed_formats_are_real_files(engine, fmt, magic, content_type):
    result = await speak(engine, "Hello.", response_format=fmt)
    assert result.audio.startswith(magic) and result.content_type == content_type


async def test_pcm_is_raw_24khz_16bit(engine):
    result = await speak(engine, "Hello.", response_format="pcm")
    assert result.content_type == "audio/pcm"
    assert len(result.audio) / 2 / 24000 == pytest.approx(result.duration_s, abs=0.05)


@pytest.mark.parametrize("text", ["", "   "])
async def test_speech_empty_text(engine, text):
    with pytest.raises(ProxyError) as info:
        await speak(engine, text)
    assert info.value.status == 400 and info.value.param == "input" and "empty" in info.value.message


async def test_speech_unknown_voice_lists_the_real_ones(engine):
    with pytest.raises(ProxyError) as info:
        await speak(engine, voice="alloy")
    assert "joe" in info.value.message and info.value.param == "voice"


async def test_voices(engine):
    assert await engine.voices("piper-joe-medium") == ["joe"]


# -- speech to text ------------------------------------------------------------------------------

async def test_tts_then_stt_round_trip_gives_the_same_words(engine):
    audio = (await speak(engine)).audio
    result = await transcribe(engine, audio)
    assert heard_back(result["text"]), result["text"]


async def test_mp3_round_trip(engine):
    audio = (await speak(engine, response_format="mp3")).audio
    text = await transcribe(engine, audio, filename="speech.mp3", response_format="text")
    assert heard_back(text), text


async def test_verbose_json_has_segments_duration_language(engine):
    spoken = await speak(engine)
    result = await transcribe(engine, spoken.audio, response_format="verbose_json", timestamp_granularities=["word", "segment"])
    assert result["language"] == "english" and result["task"] == "transcribe"
    assert result["duration"] == pytest.approx(spoken.duration_s, abs=0.05)
    segment = result["segments"][0]
    assert 0 <= segment["start"] < segment["end"] <= result["duration"]
    assert words(segment["text"])
    assert [w["word"].lower().strip(".,") for w in result["words"]][:3] == ["the", "quick", "brown"]


async def test_srt_and_vtt(engine):
    audio = (await speak(engine)).audio
    srt = await transcribe(engine, audio, response_format="srt")
    assert re.match(r"1\n00:00:\d\d,\d{3} --> 00:00:\d\d,\d{3}\n.*fox", srt)
    vtt = await transcribe(engine, audio, response_format="vtt")
    assert vtt.startswith("WEBVTT\n") and re.search(r"00:00:\d\d\.\d{3} --> 00:00:\d\d\.\d{3}\n.*fox", vtt)


async def test_translation_of_english_audio_is_english(engine):
    audio = (await speak(engine)).audio
    result = await engine.transcription(Upload("s.wav", audio), {"model": "whisper-tiny.en", "response_format": "verbose_json"}, translate=True)
    assert result["task"] == "translate" and heard_back(result["text"])


async def test_other_languages_need_a_multilingual_whisper(engine):
    with pytest.raises(ProxyError) as info:
        await transcribe(engine, b"whatever", language="fr")
    assert info.value.code == "not_supported"
    assert "English only" in info.value.message and "multilingual Whisper" in info.value.message


async def test_not_audio_is_a_clear_error(engine):
    with pytest.raises(ProxyError) as info:
        await transcribe(engine, b"this is not audio, just some text bytes " * 50, filename="notes.wav")
    assert info.value.status == 400 and "notes.wav is not audio" in info.value.message


async def test_audio_over_25_mb_is_refused(engine):
    with pytest.raises(ProxyError) as info:
        await transcribe(engine, b"\0" * (26 * 1024 * 1024))
    assert info.value.status == 413 and "25 MB" in info.value.message
