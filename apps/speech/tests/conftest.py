from __future__ import annotations

import time

import pytest

from tests.speech_round_trip import SENTENCE, heard_back, words  # noqa: F401 (re-exported for the tests here)


@pytest.fixture
def local(team):
    return team.providers.get(kind="local")


@pytest.fixture
def tts_key(local):
    return f"{local.pk}:piper-joe-medium"


@pytest.fixture
def stt_key(local):
    return f"{local.pk}:whisper-tiny.en"


def wait_finished(transcript_id: int, timeout: float = 300.0):
    """Wait for a background transcript (generous: a guard against a hang, not a speed check; 2 shared cores)."""
    from apps.speech.models import Transcript

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        transcript = Transcript.objects.get(pk=transcript_id)
        if not transcript.is_active:
            return transcript
        time.sleep(0.05)
    raise AssertionError(f"transcript {transcript_id} still {transcript.status} after {timeout} s")
