"""Audio files without models: read a file (PyAV), cut long audio at quiet moments, and
write transcripts as text, SubRip, WebVTT or JSON.

Reading the file ourselves before any provider sees it is what lets the page say "this
is not audio" or "this is 31 MB, the limit is 25 MB" without a round trip, show seconds
of audio and the real-time factor, and send long recordings in pieces with progress.
"""
from __future__ import annotations

import io
import json
import re
import wave
from dataclasses import dataclass
from typing import Any

import numpy as np

RATE = 16000  # what speech models listen at; pieces are sent as 16 kHz mono WAV


class NotAudio(ValueError):
    pass


@dataclass
class Decoded:
    samples: np.ndarray  # mono int16 at RATE
    duration_s: float

    @property
    def silent(self) -> bool:
        """No sample louder than about -50 dBFS: nothing anyone could hear."""
        return not self.samples.size or int(np.abs(self.samples.astype(np.int32)).max()) < 100


def decode(content: bytes, *, filename: str = "") -> Decoded:
    """Mono 16 kHz int16 samples of any file FFmpeg reads, or NotAudio saying so."""
    import av

    name = filename or "The file"
    if not content:
        raise NotAudio(f"{name} is empty.")
    pieces: list[np.ndarray] = []
    try:
        with av.open(io.BytesIO(content), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise NotAudio(f"{name} has no audio track.")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    pieces.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                pieces.append(out.to_ndarray().reshape(-1))
    except NotAudio:
        raise
    except Exception as exc:  # PyAV raises many kinds for "this is not a media file"
        raise NotAudio(
            f"{name} is not audio Playground can read ({type(exc).__name__}). "
            "Upload flac, m4a, mp3, mp4, mpeg, mpga, oga, ogg, wav or webm."
        ) from None
    samples = np.concatenate(pieces).astype(np.int16) if pieces else np.zeros(0, dtype=np.int16)
    if not samples.size:
        raise NotAudio(f"{name} contains no audio samples.")
    return Decoded(samples=samples, duration_s=len(samples) / RATE)


def duration_of(content: bytes, *, fmt: str = "") -> float | None:
    """Seconds of audio in a file (None if it cannot be read: raw pcm is 24 kHz s16le)."""
    if fmt == "pcm":
        return len(content) / 2 / 24000
    try:
        return decode(content).duration_s
    except NotAudio:
        return None


def wav(samples: np.ndarray, rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def pcm_as_wav(content: bytes) -> bytes:
    """OpenAI's pcm (raw 24 kHz 16-bit mono) wrapped in a WAV header, so a browser can play it."""
    return wav(np.frombuffer(content[: len(content) // 2 * 2], dtype="<i2"), rate=24000)


def plan_chunks(samples: np.ndarray, *, chunk_s: float, window_s: float = 5.0) -> list[tuple[int, int]]:
    """[start, end) sample ranges of about `chunk_s` seconds, each cut at the quietest
    50 ms within the last `window_s` seconds before the target, so words are not split."""
    total = len(samples)
    size = int(chunk_s * RATE)
    if total <= size * 1.25:
        return [(0, total)]
    frame = RATE // 20
    window = int(min(window_s, chunk_s / 2) * RATE)  # parts stay at least half of chunk_s long
    bounds, start = [], 0
    while total - start > size * 1.25:
        target = start + size
        lo = target - window
        region = samples[lo:target].astype(np.float32)
        usable = len(region) // frame * frame
        if usable:
            energy = (region[:usable].reshape(-1, frame) ** 2).mean(axis=1)
            quietest = len(energy) - 1 - int(np.argmin(energy[::-1]))  # ties: the one nearest the target
            cut = lo + quietest * frame + frame // 2
        else:
            cut = target
        bounds.append((start, cut))
        start = cut
    bounds.append((start, total))
    return bounds


# -- transcripts -----------------------------------------------------------------------------------

_CUE = re.compile(
    r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{3})\s*-->\s*(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{3})[^\n]*\n(.*?)(?:\n\s*\n|\Z)",
    re.S,
)


def _seconds(h: str | None, m: str, s: str, ms: str) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_answer(answer: dict[str, Any] | str, *, fmt: str) -> tuple[str, list[dict[str, Any]], str, dict[str, Any] | None]:
    """(text, segments, language, usage) from any response_format a provider answers in."""
    if isinstance(answer, dict):
        segments = [
            {"start": float(s.get("start") or 0), "end": float(s.get("end") or 0), "text": str(s.get("text") or "").strip()}
            for s in answer.get("segments") or [] if isinstance(s, dict)
        ]
        usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else None
        return str(answer.get("text") or "").strip(), segments, str(answer.get("language") or ""), usage
    if fmt in ("srt", "vtt"):
        body = answer.replace("\r\n", "\n").strip() + "\n\n"
        segments = [
            {"start": _seconds(*m.group(1, 2, 3, 4)), "end": _seconds(*m.group(5, 6, 7, 8)),
             "text": " ".join(m.group(9).split())}
            for m in _CUE.finditer(body)
        ]
        return " ".join(s["text"] for s in segments).strip(), segments, "", None
    return answer.strip(), [], "", None


def timestamp(seconds: float, separator: str = ".") -> str:
    millis = int(round(max(seconds, 0) * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def clock(seconds: float) -> str:
    """0:07.4 or 1:02:03: for the page."""
    seconds = max(seconds, 0)
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"{hours}:{minutes:02d}:{int(secs):02d}"
    return f"{minutes}:{secs:04.1f}"


def as_srt(segments: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{i}\n{timestamp(s['start'], ',')} --> {timestamp(s['end'], ',')}\n{s['text']}\n" for i, s in enumerate(segments, 1)
    )


def as_vtt(segments: list[dict[str, Any]]) -> str:
    return "\n".join(["WEBVTT\n"] + [f"{timestamp(s['start'])} --> {timestamp(s['end'])}\n{s['text']}\n" for s in segments])


def as_json(*, text: str, segments: list[dict[str, Any]], language: str, duration_s: float, model: str, task: str) -> str:
    return json.dumps(
        {"task": task, "model": model, "language": language, "duration": round(duration_s, 3), "text": text,
         "segments": [{"id": i, **s} for i, s in enumerate(segments)]},
        ensure_ascii=False, indent=2,
    )


def remux_webm(content: bytes) -> bytes | None:
    """A browser recording (MediaRecorder's WebM has no duration and no cues, so players
    cannot show its length or seek in it) rewritten with both; the audio packets are
    copied, not re-encoded. None if it cannot be done (the original is kept then)."""
    import av

    out = io.BytesIO()
    try:
        with av.open(io.BytesIO(content), mode="r") as source:
            if not source.streams.audio:
                return None
            in_stream = source.streams.audio[0]
            with av.open(out, mode="w", format="webm") as target:
                out_stream = target.add_stream_from_template(in_stream)
                for packet in source.demux(in_stream):
                    if packet.dts is None:
                        continue
                    packet.stream = out_stream
                    target.mux(packet)
    except Exception:  # a recording that cannot be remuxed still plays from the start
        return None
    return out.getvalue()
