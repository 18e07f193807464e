"""The speech pages: against the test upstream (a real HTTP server) and the local engine."""
from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.proxy.models import Run
from apps.speech.models import Transcript
from apps.speech.tests.conftest import SENTENCE, heard_back, wait_finished
from tests.upstream import Reply, wav_bytes

pytestmark = pytest.mark.django_db(transaction=True)

VERBOSE = {
    "task": "transcribe", "language": "english", "duration": 2.0, "text": "Hello from the upstream. Second part.",
    "segments": [{"id": 0, "start": 0.0, "end": 1.2, "text": " Hello from the upstream."},
                 {"id": 1, "start": 1.2, "end": 2.0, "text": " Second part."}],
    "usage": {"type": "duration", "seconds": 2},
}


def _speak(client, key, text=SENTENCE, **extra):
    data = {"text": text, "model_key": key, "voice": "joe", "speed": "1", "response_format": "wav", **extra}
    return client.post(reverse("speech:index"), data)


def _upload(client, key, content, name="speech.wav", **extra):
    data = {"model_key": key, "task": "transcribe", "response_format": "verbose_json",
            "file": SimpleUploadedFile(name, content, content_type="audio/wav"), **extra}
    return client.post(reverse("speech:transcribe"), data)


# -- the round trip through the pages, local engine ------------------------------------------------

def test_tts_then_stt_round_trip_through_the_pages(owner_client, tts_key, stt_key):
    page = owner_client.get(reverse("speech:index")).content.decode()
    assert "piper-joe-medium" in page and 'value="joe"' in page
    response = _speak(owner_client, tts_key)
    assert response.status_code == 302
    clip = Run.objects.get(capability="speech")
    page = owner_client.get(response["Location"]).content.decode()
    assert f'src="/speech/clips/{clip.pk}/audio"' in page and "<audio" in page
    assert "s audio" in page and f"{len(SENTENCE)} chars" in page and "$0" in page and "RTF" in page
    assert SENTENCE in page  # the history lists the clip's text
    spoken = owner_client.get(reverse("speech:clip_audio", args=[clip.pk]))
    assert spoken["Content-Type"] == "audio/wav" and spoken.content[:4] == b"RIFF"

    response = _upload(owner_client, stt_key, spoken.content, name="spoken.wav")
    assert response.status_code == 302
    transcript = wait_finished(Transcript.objects.get().pk)
    page = owner_client.get(response["Location"]).content.decode()
    heard = " ".join(re.findall(r'<span class="seg-text">(.*?)</span>', page))
    assert heard_back(heard), heard
    assert re.search(r'class="segment" data-start="0\.\d{3}" data-end="\d\.\d{3}"', page)
    assert "0:00.0 →" in page
    assert f"{transcript.duration_s:.1f} s audio" in page and "RTF" in page
    srt = owner_client.get(reverse("speech:transcript_download", args=[transcript.pk]), {"format": "srt"})
    assert srt["Content-Disposition"] == 'attachment; filename="spoken.srt"'
    assert re.match(r"1\n00:00:00,\d{3} --> 00:00:0\d,\d{3}\n.*fox", srt.content.decode())
    vtt = owner_client.get(reverse("speech:transcript_download", args=[transcript.pk]), {"format": "vtt", "name": "my notes"})
    assert vtt["Content-Disposition"] == 'attachment; filename="my notes.vtt"' and vtt.content.startswith(b"WEBVTT")


def test_silence_shows_no_speech_not_an_error(owner_client, stt_key):
    silent = wav_bytes(seconds=2.0, freq=0.0)
    response = _upload(owner_client, stt_key, silent, name="quiet.wav")
    transcript = wait_finished(Transcript.objects.get().pk)
    page = owner_client.get(response["Location"])
    assert page.status_code == 200 and transcript.status == "succeeded"
    assert 'id="no-speech"' in page.content.decode() and "No speech found" in page.content.decode()


# -- against the test upstream -----------------------------------------------------------------------

def test_tts_on_the_upstream_records_the_request_and_prices_characters(owner_client, only_upstream, upstream):
    response = _speak(owner_client, f"{only_upstream.pk}:tts-1", voice="alloy", response_format="wav", speed="1.5")
    assert response.status_code == 302
    sent = upstream.requests_to("/v1/audio/speech")[0].json
    assert sent == {"model": "tts-1", "input": SENTENCE, "voice": "alloy", "response_format": "wav", "speed": 1.5}
    clip = Run.objects.get(capability="speech")
    assert clip.cost == (Decimal("0.000015") * len(SENTENCE)).quantize(Decimal("0.000001"))
    assert clip.output["duration_s"] == pytest.approx(0.5, abs=0.01)  # measured from the file the upstream sent


def test_upstream_voices_are_offered(owner_client, only_upstream):
    page = owner_client.get(reverse("speech:tts_options"), {"model_key": f"{only_upstream.pk}:tts-1"}).content.decode()
    assert 'value="alloy"' in page and 'value="shimmer"' in page and "joe" not in page


def test_stt_on_the_upstream_with_segments_and_per_minute_cost(owner_client, only_upstream, upstream):
    upstream.script("POST /v1/audio/transcriptions", Reply(json=VERBOSE))
    response = _upload(owner_client, f"{only_upstream.pk}:whisper-1", wav_bytes(seconds=2.0), language="en", prompt="Hello", temperature="0.2")
    transcript = wait_finished(Transcript.objects.get().pk)
    assert transcript.status == "succeeded", transcript.error
    body = upstream.requests_to("/v1/audio/transcriptions")[0].body
    for field in (b'name="model"\r\n\r\nwhisper-1', b'name="language"\r\n\r\nen', b'name="prompt"\r\n\r\nHello',
                  b'name="temperature"\r\n\r\n0.2', b'name="response_format"\r\n\r\nverbose_json', b'filename="speech.wav"'):
        assert field in body
    assert [s["text"] for s in transcript.segments] == ["Hello from the upstream.", "Second part."]
    assert transcript.run.cost == Decimal("0.000200")  # 2 s of whisper-1 at $0.006 a minute
    page = owner_client.get(response["Location"]).content.decode()
    assert page.count('class="segment"') == 2 and "0:01.2 → 0:02.0" in page


def test_srt_answer_is_parsed_into_segments(owner_client, only_upstream, upstream):
    srt = "1\n00:00:00,000 --> 00:00:01,500\nFirst line\n\n2\n00:00:01,500 --> 00:00:02,000\nSecond line\n"
    upstream.script("POST /v1/audio/transcriptions", Reply(body=srt.encode(), content_type="text/plain"))
    _upload(owner_client, f"{only_upstream.pk}:whisper-1", wav_bytes(seconds=2.0), response_format="srt")
    transcript = wait_finished(Transcript.objects.get().pk)
    assert transcript.segments == [{"start": 0.0, "end": 1.5, "text": "First line"}, {"start": 1.5, "end": 2.0, "text": "Second line"}]
    assert transcript.text == "First line Second line"


def test_translation_goes_to_the_translations_endpoint(owner_client, only_upstream, upstream):
    upstream.script("POST /v1/audio/translations", Reply(json={**VERBOSE, "task": "translate"}))
    _upload(owner_client, f"{only_upstream.pk}:whisper-1", wav_bytes(seconds=2.0), task="translate")
    transcript = wait_finished(Transcript.objects.get().pk)
    assert transcript.status == "succeeded" and upstream.requests_to("/v1/audio/translations")
    assert transcript.run.capability == "translation"


def test_a_model_that_cannot_translate_is_refused_before_sending(owner_client, only_upstream, upstream):
    upstream.models.append("gpt-4o-transcribe")
    response = _upload(owner_client, f"{only_upstream.pk}:gpt-4o-transcribe", wav_bytes(), task="translate")
    assert response.status_code == 400 and "gpt-4o-transcribe cannot translate" in response.content.decode()
    assert not upstream.requests_to("/v1/audio/translations") and not Transcript.objects.exists()


# -- faults -------------------------------------------------------------------------------------------

def test_a_file_that_is_not_audio_is_refused(owner_client, only_upstream, upstream):
    response = _upload(owner_client, f"{only_upstream.pk}:whisper-1", b"just some notes, not audio\n" * 40, name="notes.txt")
    body = response.content.decode()
    assert response.status_code == 400 and "notes.txt is not audio Playground can read" in body
    assert not Transcript.objects.exists() and not upstream.requests_to("/v1/audio/transcriptions")


def test_a_file_over_the_limit_is_refused_naming_the_limit(owner_client, only_upstream, upstream, settings):
    settings.SPEECH_MAX_UPLOAD_BYTES = 1024 * 1024
    response = _upload(owner_client, f"{only_upstream.pk}:whisper-1", wav_bytes(seconds=40.0), name="long.wav")
    body = response.content.decode()
    assert response.status_code == 400 and "long.wav is 1.2 MB; the limit is 1 MB per file" in body
    assert not Transcript.objects.exists() and not upstream.requests_to("/v1/audio/transcriptions")


def test_the_default_limit_is_openais_25_mb(owner_client, only_upstream):
    page = owner_client.get(reverse("speech:transcribe")).content.decode()
    assert "up to 25 MB" in page


def test_a_provider_without_text_to_speech_is_named(owner_client, only_upstream, upstream):
    upstream.script("POST /v1/audio/speech", Reply.error(404, "404 page not found"))
    response = _speak(owner_client, f"{only_upstream.pk}:tts-1", voice="alloy")
    body = response.content.decode()
    assert response.status_code == 400
    assert "Test upstream does not offer text to speech" in body and "/audio/speech" in body
    assert Run.objects.get(capability="speech").status == "failed"


def test_a_provider_without_speech_to_text_is_named(owner_client, only_upstream, upstream):
    upstream.script("POST /v1/audio/transcriptions", Reply.error(404, "404 page not found"))
    response = _upload(owner_client, f"{only_upstream.pk}:whisper-1", wav_bytes(seconds=1.0))
    transcript = wait_finished(Transcript.objects.get().pk)
    assert transcript.status == "failed" and "Test upstream does not offer speech to text" in transcript.error
    assert "Test upstream does not offer speech to text" in owner_client.get(response["Location"]).content.decode()


def test_the_local_engine_refuses_a_chat_model_for_speech(owner_client, local):
    response = _speak(owner_client, f"{local.pk}:smollm2-135m-instruct")
    assert response.status_code == 400
    assert "smollm2-135m-instruct cannot do text to speech" in response.content.decode()


@pytest.mark.parametrize("name", ["../../etc/passwd", "..\\secret", "a/b.srt", "x\x00.srt"])
def test_path_traversal_in_a_download_name_is_refused(owner_client, only_upstream, upstream, name):
    upstream.script("POST /v1/audio/transcriptions", Reply(json=VERBOSE))
    _upload(owner_client, f"{only_upstream.pk}:whisper-1", wav_bytes(seconds=2.0))
    transcript = wait_finished(Transcript.objects.get().pk)
    response = owner_client.get(reverse("speech:transcript_download", args=[transcript.pk]), {"format": "srt", "name": name})
    assert response.status_code == 400 and "Content-Disposition" not in response
    _speak(owner_client, f"{only_upstream.pk}:tts-1", voice="alloy")
    clip = Run.objects.get(capability="speech")
    response = owner_client.get(reverse("speech:clip_audio", args=[clip.pk]), {"download": "1", "name": name})
    assert response.status_code == 400 and "Content-Disposition" not in response


def test_an_uploaded_name_never_becomes_a_storage_path(owner_client, only_upstream, upstream):
    upstream.script("POST /v1/audio/transcriptions", Reply(json=VERBOSE))
    _upload(owner_client, f"{only_upstream.pk}:whisper-1", wav_bytes(), name="../../../../tmp/evil.wav")
    transcript = wait_finished(Transcript.objects.get().pk)
    assert ".." not in transcript.audio.name and transcript.audio.name.startswith("speech/")
    assert transcript.filename == "evil.wav"


def test_a_viewer_cannot_create(viewer_client, team):
    local = team.providers.get(kind="local")
    page = viewer_client.get(reverse("speech:index")).content.decode()
    assert "Your role is viewer" in page and re.search(r'id="tts-run"[^>]*disabled', page)
    assert _speak(viewer_client, f"{local.pk}:piper-joe-medium").status_code == 403
    assert _upload(viewer_client, f"{local.pk}:whisper-tiny.en", wav_bytes()).status_code == 403
    assert not Run.objects.exists() and not Transcript.objects.exists()


def test_another_teams_clip_and_transcript_are_404(owner_client, outsider_client, only_upstream, upstream):
    upstream.script("POST /v1/audio/transcriptions", Reply(json=VERBOSE))
    _upload(owner_client, f"{only_upstream.pk}:whisper-1", wav_bytes(seconds=2.0))
    transcript = wait_finished(Transcript.objects.get().pk)
    _speak(owner_client, f"{only_upstream.pk}:tts-1", voice="alloy")
    clip = Run.objects.get(capability="speech")
    for name in ("speech:transcript", "speech:transcript_progress", "speech:transcript_audio", "speech:transcript_download"):
        assert outsider_client.get(reverse(name, args=[transcript.pk])).status_code == 404
    assert outsider_client.post(reverse("speech:transcript_cancel", args=[transcript.pk])).status_code == 404
    assert outsider_client.get(reverse("speech:clip_audio", args=[clip.pk])).status_code == 404
    page = outsider_client.get(reverse("speech:index"), {"clip": clip.pk}).content.decode()
    assert f"/speech/clips/{clip.pk}/audio" not in page and "Generated audio" not in page


def test_pcm_plays_in_the_page_as_wav_and_downloads_raw(owner_client, only_upstream, upstream):
    raw = b"\x01\x00\xff\xff" * 12000  # 24,000 samples: one second at 24 kHz
    upstream.script("POST /v1/audio/speech", Reply(body=raw, content_type="audio/pcm"))
    _speak(owner_client, f"{only_upstream.pk}:tts-1", voice="alloy", response_format="pcm")
    clip = Run.objects.get(capability="speech")
    assert clip.output["duration_s"] == pytest.approx(1.0)
    played = owner_client.get(reverse("speech:clip_audio", args=[clip.pk]))
    assert played["Content-Type"] == "audio/wav" and played.content[:4] == b"RIFF" and played.content.endswith(raw)
    downloaded = owner_client.get(reverse("speech:clip_audio", args=[clip.pk]), {"download": "1"})
    assert downloaded.content == raw and downloaded["Content-Disposition"] == f'attachment; filename="speech-{clip.pk}.pcm"'


def test_bad_tts_input_says_what_to_fix(owner_client, only_upstream, upstream):
    key = f"{only_upstream.pk}:tts-1"
    assert "Write the text to speak" in _speak(owner_client, key, text="   ", voice="alloy").content.decode()
    too_long = _speak(owner_client, key, text="a" * 4097, voice="alloy")
    assert too_long.status_code == 400 and "4,097 characters" in too_long.content.decode()
    assert "Speed must be from 0.25 to 4" in _speak(owner_client, key, voice="alloy", speed="9").content.decode()
    assert not upstream.requests_to("/v1/audio/speech")


def test_audio_is_served_in_byte_ranges_so_the_player_can_seek(owner_client, only_upstream, upstream):
    upstream.script("POST /v1/audio/transcriptions", Reply(json=VERBOSE))
    content = wav_bytes(seconds=2.0)
    _upload(owner_client, f"{only_upstream.pk}:whisper-1", content)
    transcript = wait_finished(Transcript.objects.get().pk)
    url = reverse("speech:transcript_audio", args=[transcript.pk])
    whole = owner_client.get(url)
    assert whole.status_code == 200 and whole["Accept-Ranges"] == "bytes" and whole.content == content
    part = owner_client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == content[100:200]
    assert part["Content-Range"] == f"bytes 100-199/{len(content)}"
    tail = owner_client.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == content[-10:]
    assert owner_client.get(url, headers={"Range": f"bytes={len(content)}-"}).status_code == 416


def test_delete_a_transcript_keeps_its_run_and_audio(owner_client, only_upstream, upstream):
    upstream.script("POST /v1/audio/transcriptions", Reply(json=VERBOSE))
    _upload(owner_client, f"{only_upstream.pk}:whisper-1", wav_bytes(seconds=2.0))
    transcript = wait_finished(Transcript.objects.get().pk)
    page = owner_client.get(reverse("speech:transcript", args=[transcript.pk])).content.decode()
    assert reverse("speech:transcript_delete", args=[transcript.pk]) in page
    response = owner_client.post(reverse("speech:transcript_delete", args=[transcript.pk]), follow=True)
    assert "Deleted the transcript of speech.wav" in response.content.decode()
    assert not Transcript.objects.exists()
    run = Run.objects.get(capability="transcription")
    assert run.output_file.storage.exists(run.output_file.name)  # the run's record of what it heard stays
