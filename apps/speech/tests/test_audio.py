"""Reading audio, cutting it at quiet moments, and transcript formats (no models)."""
from __future__ import annotations

import numpy as np
import pytest

from apps.speech import audio
from tests.upstream import wav_bytes


def test_decode_reads_duration_and_refuses_text():
    assert audio.decode(wav_bytes(seconds=1.5)).duration_s == pytest.approx(1.5, abs=0.01)
    with pytest.raises(audio.NotAudio, match="notes.txt is not audio Playground can read"):
        audio.decode(b"plain text, not audio\n" * 50, filename="notes.txt")
    with pytest.raises(audio.NotAudio, match="empty"):
        audio.decode(b"", filename="empty.wav")


def test_silence_is_detected():
    assert audio.decode(wav_bytes(seconds=1.0, freq=0.0)).silent
    assert not audio.decode(wav_bytes(seconds=1.0)).silent


def test_long_audio_is_cut_at_the_quiet_moment():
    rate = audio.RATE
    loud = (np.sin(np.arange(rate * 20) / 5) * 8000).astype(np.int16)
    loud[int(8.2 * rate):int(8.4 * rate)] = 0  # a pause shortly before the 9 s target
    plan = audio.plan_chunks(loud, chunk_s=9.0)
    assert plan[0][0] == 0 and plan[-1][1] == len(loud)
    assert 8.2 * rate <= plan[0][1] <= 8.4 * rate
    assert all(a[1] == b[0] for a, b in zip(plan, plan[1:]))
    assert audio.plan_chunks(loud, chunk_s=60.0) == [(0, len(loud))]


def test_srt_and_vtt_answers_become_segments_and_back():
    vtt = "WEBVTT\n\n00:00:00.000 --> 00:00:01.250\nHello there\n\n00:00:01.250 --> 00:01:02.500\nGeneral\nKenobi\n"
    text, segments, _, _ = audio.parse_answer(vtt, fmt="vtt")
    assert text == "Hello there General Kenobi"
    assert segments == [{"start": 0.0, "end": 1.25, "text": "Hello there"}, {"start": 1.25, "end": 62.5, "text": "General Kenobi"}]
    assert audio.as_vtt(segments).startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.250\nHello there\n")
    assert "2\n00:00:01,250 --> 00:01:02,500\nGeneral Kenobi\n" in audio.as_srt(segments)
    assert audio.parse_answer("just text\n", fmt="text") == ("just text", [], "", None)
    assert audio.clock(62.5) == "1:02.5" and audio.clock(3723) == "1:02:03"
