from __future__ import annotations

import re
import time

import pytest

SENTENCE = "The quick brown fox jumps over the lazy dog."


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9 ]", " ", text.lower()).split()


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
