"""Reads for speech, team-scoped: clips (speech Runs with audio), transcripts, and what a
provider offers for text to speech (voices, formats)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

from asgiref.sync import async_to_sync
from django.db.models import QuerySet

from apps.accounts.models import Team
from apps.accounts.selectors import team_get_object_or_404
from apps.proxy.errors import ProxyError
from apps.proxy.models import Capability, Provider, Run
from apps.proxy.providers import provider_for
from apps.speech import audio
from apps.speech.models import Transcript
from apps.speech.services import SPEECH_FORMATS

logger = logging.getLogger(__name__)

FORMAT_NOTES = {
    "mp3": "MP3: small, plays everywhere",
    "wav": "WAV: uncompressed, no decoding delay",
    "opus": "Opus (Ogg): smallest, for streaming and calls",
    "flac": "FLAC: lossless, compressed",
    "aac": "AAC (ADTS): for Apple devices and video",
    "pcm": "PCM: raw 24 kHz 16-bit samples, no header (played here as WAV)",
}
# What the local engine needs from PyAV's FFmpeg to write each compressed format.
LOCAL_ENCODERS = {"mp3": "libmp3lame", "opus": "libopus", "aac": "aac", "flac": "flac"}


# -- clips ---------------------------------------------------------------------------------------

def clips_for_team(*, team: Team) -> QuerySet[Run]:
    return (Run.objects.filter(team=team, capability=Capability.SPEECH).exclude(output_file="")
            .select_related("user", "provider"))


def clip_get(*, team: Team, clip_id: int | str) -> Run:
    return team_get_object_or_404(clips_for_team(team=team), team=team, pk=clip_id)


# -- transcripts ----------------------------------------------------------------------------------

def transcripts_for_team(*, team: Team) -> QuerySet[Transcript]:
    return Transcript.objects.filter(team=team).select_related("run", "user")


def transcript_get(*, team: Team, transcript_id: int | str) -> Transcript:
    return team_get_object_or_404(transcripts_for_team(team=team), team=team, pk=transcript_id)


@dataclass
class SegmentRow:
    index: int
    start: float
    end: float
    text: str

    @property
    def start_clock(self) -> str:
        return audio.clock(self.start)

    @property
    def end_clock(self) -> str:
        return audio.clock(self.end)


def segment_rows(*, transcript: Transcript) -> list[SegmentRow]:
    return [SegmentRow(index=i, start=float(s.get("start") or 0), end=float(s.get("end") or 0), text=str(s.get("text") or ""))
            for i, s in enumerate(transcript.segments)]


# -- what a text-to-speech model offers ----------------------------------------------------------------

@dataclass
class FormatOption:
    value: str
    label: str
    enabled: bool = True
    reason: str = ""


@lru_cache(maxsize=1)
def _local_missing_encoders() -> dict[str, str]:
    try:
        import av
    except ImportError:
        return {fmt: "PyAV is not installed" for fmt in LOCAL_ENCODERS}
    missing = {}
    for fmt, codec in LOCAL_ENCODERS.items():
        try:
            av.codec.Codec(codec, "w")
        except Exception:
            missing[fmt] = f"this server's FFmpeg has no {codec} encoder"
    return missing


def formats_for(*, provider: Provider | None) -> list[FormatOption]:
    """Every format, and for the local engine the ones it cannot write (with why)."""
    missing = _local_missing_encoders() if provider is not None and provider.is_local else {}
    return [
        FormatOption(value=fmt, label=FORMAT_NOTES[fmt], enabled=fmt not in missing,
                     reason=f"The local engine cannot write {fmt}: {missing[fmt]}." if fmt in missing else "")
        for fmt in SPEECH_FORMATS
    ]


def voices_for(*, provider: Provider | None, model: str) -> tuple[list[str], str]:
    """(voices, error): the provider's voices for the model."""
    if provider is None:
        return [], ""
    try:
        return async_to_sync(provider_for(provider).voices)(model), ""
    except ProxyError as exc:
        return [], exc.message
