"""Speech services against the local engine's real models: Piper speaks, Whisper listens."""
from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from apps.proxy.models import Run
from apps.speech import audio, services
from apps.speech.models import Transcript, TranscriptStatus
from apps.speech.tests.conftest import SENTENCE, heard_back, wait_finished, words

pytestmark = pytest.mark.django_db(transaction=True)


def _speak(team, owner, local, text=SENTENCE, fmt="wav", **extra):
    return services.speech_create(team=team, user=owner, provider=local, model="piper-joe-medium", text=text,
                                  voice="joe", response_format=fmt, **extra)


def _transcribe(team, owner, local, content, filename="speech.wav", **extra):
    transcript = services.transcript_start(team=team, user=owner, provider=local, model="whisper-tiny.en",
                                           filename=filename, content=content, content_type="audio/wav", **extra)
    return wait_finished(transcript.pk)


def test_speak_then_transcribe_gives_the_same_words_with_timestamps(team, owner, local):
    clip = _speak(team, owner, local)
    assert clip.status == "succeeded" and clip.capability == "speech"
    assert clip.output_file.name.endswith(".wav")
    with clip.output_file.open("rb") as handle:
        spoken = handle.read()
    seconds = clip.output["duration_s"]
    assert 1.5 < seconds < 6 and audio.decode(spoken).duration_s == pytest.approx(seconds, abs=0.05)
    assert clip.output["characters"] == len(SENTENCE) and clip.cost == Decimal("0")
    assert clip.prompt_tokens and clip.total_ms > 0 and clip.output["rtf"] > 0

    transcript = _transcribe(team, owner, local, spoken)
    assert transcript.status == TranscriptStatus.SUCCEEDED, transcript.error
    assert heard_back(transcript.text), transcript.text
    assert transcript.segments and all(0 <= s["start"] < s["end"] <= seconds + 0.01 for s in transcript.segments)
    run = transcript.run
    assert run.capability == "transcription" and run.status == "succeeded" and run.cost == Decimal("0")
    assert run.output_file.name == transcript.audio.name  # the Run keeps the audio it heard
    assert run.completion_tokens and run.output["rtf"] > 0 and run.output["duration_s"] == pytest.approx(seconds, abs=0.05)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "flac", "aac", "pcm"])
def test_every_local_format_is_a_playable_file(team, owner, local, fmt):
    clip = _speak(team, owner, local, text="Hello there.", fmt=fmt)
    assert clip.output_file.name.endswith("." + fmt)
    assert clip.output["duration_s"] > 0.3


def test_long_audio_is_sent_in_parts_with_timestamps_in_order(team, owner, local, settings):
    settings.SPEECH_CHUNK_SECONDS = 3.0
    text = "One small step for a man. " + SENTENCE + " Playground speaks and listens on your own machine."
    clip = _speak(team, owner, local, text=text)
    with clip.output_file.open("rb") as handle:
        transcript = _transcribe(team, owner, local, handle.read())
    assert transcript.status == TranscriptStatus.SUCCEEDED, transcript.error
    assert transcript.chunks >= 2 and transcript.chunks_done == transcript.chunks
    assert transcript.run.output["pieces"] == transcript.chunks
    starts = [s["start"] for s in transcript.segments]
    assert starts == sorted(starts) and transcript.segments[-1]["end"] > 3.0
    assert {"fox", "dog", "playground", "machine"} <= set(words(transcript.text))


def test_silence_is_an_empty_transcript_not_an_error(team, owner, local):
    silent = audio.wav(np.zeros(16000 * 3, dtype=np.int16))
    transcript = _transcribe(team, owner, local, silent, filename="quiet.wav")
    assert transcript.status == TranscriptStatus.SUCCEEDED and transcript.text == "" and transcript.segments == []
    assert transcript.run.status == "succeeded" and transcript.run.output["silent_pieces"] == 1
    assert transcript.run.output["calls"] == 0  # Whisper says "You" for digital silence: it is not sent


def test_translation_with_an_english_only_model_says_so(team, owner, local):
    clip = _speak(team, owner, local)
    with clip.output_file.open("rb") as handle:
        transcript = _transcribe(team, owner, local, handle.read(), task="translate", language="de")
    assert transcript.status == TranscriptStatus.FAILED
    assert "English only" in transcript.error and "whisper-1" in transcript.error
    assert Run.objects.get(pk=transcript.run_id).capability == "translation"


def test_stop_keeps_what_was_transcribed(team, owner, local, settings):
    settings.SPEECH_CHUNK_SECONDS = 2.0
    clip = _speak(team, owner, local, text=" ".join([SENTENCE] * 4))
    with clip.output_file.open("rb") as handle:
        content = handle.read()
    transcript = services.transcript_start(team=team, user=owner, provider=local, model="whisper-tiny.en",
                                           filename="long.wav", content=content)
    # Stop once the first part is in: the parts after it are not sent.
    import time
    deadline = time.monotonic() + 60
    while Transcript.objects.get(pk=transcript.pk).chunks_done < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    services.transcript_cancel(transcript=Transcript.objects.get(pk=transcript.pk))
    transcript = wait_finished(transcript.pk)
    assert transcript.status == TranscriptStatus.CANCELLED
    assert transcript.chunks_done < transcript.chunks and transcript.text
    assert "Stopped" in transcript.error and transcript.run.status == "cancelled"
