"""Writes for speech: speak a text (a clip = a Run with its audio file), and transcribe or
translate audio (a Transcript job, in the background, with progress and Stop).

Every model call goes through apps.proxy.services.call_recorded, so each clip and each
transcript is one Run with its numbers. Audio is read here (apps.speech.audio) before
any provider sees it: a file that is not audio or is too big is refused with a message,
and long recordings are sent in pieces so the page can show progress and stop between
them, keeping what was transcribed.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from decimal import Decimal
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import close_old_connections, transaction
from django.utils import timezone

from apps.accounts.models import Team
from apps.proxy import tokens
from apps.proxy.errors import ProxyError
from apps.proxy.models import Capability, ModelPrice, Provider, Run
from apps.proxy.providers import provider_for
from apps.proxy.providers.base import AudioResult, Upload
from apps.proxy.services import call_recorded, cost_of, price_for
from apps.speech import audio
from apps.speech.models import Task, Transcript, TranscriptStatus

logger = logging.getLogger(__name__)

SPEECH_FORMATS = ("mp3", "wav", "opus", "flac", "aac", "pcm")
TRANSCRIPT_FORMATS = ("verbose_json", "json", "text", "srt", "vtt")
MAX_TTS_CHARS = 4096  # OpenAI's limit per /v1/audio/speech request
MAX_UPLOAD_BYTES = 25 * 1024 * 1024  # OpenAI's limit per transcription upload
CHUNK_SECONDS = 60.0
AUDIO_EXTENSIONS = {"flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm", "opus", "aac", "weba"}

# Audio models are billed per character or per minute, not per token (OpenAI's price list).
# A team's own row in Settings -> Prices (per 1M tokens) wins over these.
AUDIO_RATES: dict[str, tuple[str, Decimal]] = {
    "tts-1-hd": ("character", Decimal("0.000030")),
    "tts-1": ("character", Decimal("0.000015")),
    "gpt-4o-mini-tts": ("minute", Decimal("0.015")),
    "whisper-1": ("minute", Decimal("0.006")),
    "gpt-4o-transcribe": ("minute", Decimal("0.006")),
    "gpt-4o-mini-transcribe": ("minute", Decimal("0.003")),
}


def _setting(name: str, default):
    return type(default)(getattr(settings, name, default))


def max_upload_bytes() -> int:
    return _setting("SPEECH_MAX_UPLOAD_BYTES", MAX_UPLOAD_BYTES)


def audio_rate(model: str) -> tuple[str, Decimal] | None:
    base = model.rsplit("/", 1)[-1]
    for prefix in sorted(AUDIO_RATES, key=len, reverse=True):
        if base == prefix or base.startswith(prefix + "-"):
            return AUDIO_RATES[prefix]
    return None


def audio_cost(*, team: Team, provider: Provider | None, model: str, characters: int = 0, seconds: float = 0.0,
               prompt_tokens: int | None = None, completion_tokens: int | None = None) -> Decimal | None:
    """What a speech call cost: nothing locally; the team's token price if it set one; the
    model's per-character or per-minute rate; the catalog's token price; else unknown."""
    if provider is not None and provider.is_local:
        return Decimal("0")
    if not ModelPrice.objects.filter(team=team, model=model).exists():
        rate = audio_rate(model)
        if rate is not None:
            unit, price = rate
            amount = Decimal(characters) if unit == "character" else Decimal(str(seconds)) / Decimal(60)
            return (price * amount).quantize(Decimal("0.000001"))
    input_price, output_price = price_for(team=team, model=model)
    return cost_of(input_price=input_price, output_price=output_price, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)


def _lacks(exc: ProxyError, *, provider: Provider, what: str, path: str) -> ProxyError:
    """An upstream without the endpoint (Ollama, llama.cpp ...) answers 404: say what that means."""
    if exc.code == "not_found":
        return ProxyError(
            f"{provider.name} does not offer {what}: its server has no {path} endpoint. "
            "Pick a model of a provider that does (OpenAI, or the local engine).",
            code="not_supported", status=400,
        )
    return exc


# -- text to speech --------------------------------------------------------------------------------

def speech_create(*, team: Team, user, provider: Provider, model: str, text: str, voice: str, speed: float | str | None = None,
                  response_format: str = "mp3", instructions: str = "") -> Run:
    """Speak `text`: one Run, its audio in Run.output_file. ValidationError for bad input,
    ProxyError for what the provider said."""
    text = (text or "").strip()
    if not text:
        raise ValidationError("Write the text to speak.")
    if len(text) > MAX_TTS_CHARS:
        raise ValidationError(f"The text is {len(text):,} characters; one request speaks at most {MAX_TTS_CHARS:,}. Shorten it or split it.")
    if response_format not in SPEECH_FORMATS:
        raise ValidationError(f"Format {response_format!r} is unknown; choose one of {', '.join(SPEECH_FORMATS)}.")
    if not (voice or "").strip():
        raise ValidationError("Choose a voice.")
    try:
        speed_value = float(speed) if speed not in (None, "") else 1.0
    except (TypeError, ValueError):
        raise ValidationError(f"Speed must be a number from 0.25 to 4, not {speed!r}.") from None
    if not 0.25 <= speed_value <= 4.0:
        raise ValidationError(f"Speed must be from 0.25 to 4 (it is {speed_value:g}).")
    request: dict[str, Any] = {"model": model, "input": text, "voice": voice.strip(), "response_format": response_format, "speed": speed_value}
    if instructions.strip():
        request["instructions"] = instructions.strip()
    impl = provider_for(provider)
    characters = len(text)
    prompt_tokens = tokens.count_text(text, model=model)

    def summarize(result: AudioResult) -> tuple[dict[str, Any], str, dict[str, Any] | None]:
        output = {"format": result.format, "content_type": result.content_type, "bytes": len(result.audio),
                  "duration_s": result.duration_s, "characters": characters}
        return output, "", {"prompt_tokens": prompt_tokens, "completion_tokens": 0, "total_tokens": prompt_tokens}

    try:
        result, run = async_to_sync(call_recorded)(
            team=team, user=user, provider=provider, capability=Capability.SPEECH, model=model,
            request=request, call=lambda: impl.speech(request), summarize=summarize,
        )
    except ProxyError as exc:
        raise _lacks(exc, provider=provider, what="text to speech", path="/audio/speech") from None
    duration = result.duration_s if result.duration_s else audio.duration_of(result.audio, fmt=response_format)
    run.refresh_from_db()
    run.output = {**run.output, "duration_s": duration, "rtf": _rtf(run.total_ms, duration)}
    run.cost = audio_cost(team=team, provider=provider, model=model, characters=characters, seconds=duration or 0.0,
                          prompt_tokens=prompt_tokens)
    run.output_file.save(f"speech-{run.pk}.{response_format}", ContentFile(result.audio), save=False)
    run.save(update_fields=["output", "cost", "output_file"])
    return run


def _rtf(total_ms: float | None, seconds: float | None) -> float | None:
    """Real-time factor: processing time / audio time (under 1 is faster than real time)."""
    if not total_ms or not seconds:
        return None
    return round(total_ms / 1000 / seconds, 3)


# -- speech to text --------------------------------------------------------------------------------

def _extension(filename: str) -> str:
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return ext if ext in AUDIO_EXTENSIONS else "bin"


def transcript_start(*, team: Team, user, provider: Provider, model: str, filename: str, content: bytes, content_type: str = "",
                     task: str = Task.TRANSCRIBE, language: str = "", prompt: str = "", temperature: float | str | None = None,
                     response_format: str = "verbose_json", capabilities: frozenset[str] | None = None) -> Transcript:
    """Check the audio and the options, save the file and start the job in the background."""
    filename = (filename or "audio").replace("\\", "/").rsplit("/", 1)[-1][:200] or "audio"
    limit = max_upload_bytes()
    if len(content) > limit:
        raise ValidationError(
            f"{filename} is {len(content) / 1048576:.1f} MB; the limit is {limit / 1048576:.0f} MB per file. "
            "Upload a shorter or more compressed recording (mp3, ogg or webm)."
        )
    if task not in Task.values:
        raise ValidationError("Choose transcribe or translate.")
    if response_format not in TRANSCRIPT_FORMATS:
        raise ValidationError(f"Output format {response_format!r} is unknown; choose one of {', '.join(TRANSCRIPT_FORMATS)}.")
    language = (language or "").strip().lower()
    if language and not (language.isalpha() and 2 <= len(language) <= 3 or language in ("english",)):
        raise ValidationError(f"Language {language!r} is not an ISO-639-1 code; write e.g. en, de or fr, or leave it empty.")
    try:
        temperature_value = float(temperature) if temperature not in (None, "") else None
    except (TypeError, ValueError):
        raise ValidationError(f"Temperature must be a number from 0 to 1, not {temperature!r}.") from None
    if temperature_value is not None and not 0 <= temperature_value <= 1:
        raise ValidationError(f"Temperature must be from 0 to 1 (it is {temperature_value:g}).")
    if task == Task.TRANSLATE and capabilities is not None and "stt" in capabilities and "translation" not in capabilities:
        raise ValidationError(f"{model} cannot translate: OpenAI's translations endpoint takes whisper-1. Choose whisper-1 or transcribe instead.")
    try:
        decoded = audio.decode(content, filename=filename)
    except audio.NotAudio as exc:
        raise ValidationError(str(exc)) from None
    chunks = len(audio.plan_chunks(decoded.samples, chunk_s=_setting("SPEECH_CHUNK_SECONDS", CHUNK_SECONDS)))
    if _extension(filename) in ("webm", "weba"):
        content = audio.remux_webm(content) or content
    with transaction.atomic():
        transcript = Transcript(
            team=team, user=user, provider=provider, provider_name=provider.name, model=model, task=task,
            language=language, prompt=prompt.strip(), temperature=temperature_value, response_format=response_format,
            filename=filename, content_type=(content_type or "")[:100], size_bytes=len(content),  # as stored
            duration_s=decoded.duration_s, chunks=chunks,
        )
        # The stored name never comes from the upload's name (no paths from the request).
        transcript.audio.save(f"transcript.{_extension(filename)}", ContentFile(content), save=False)
        transcript.save()
        transaction.on_commit(lambda: transcript_spawn(transcript_id=transcript.pk))
    return transcript


# Jobs running in this process: id -> (loop, task), so Stop can cancel the request in flight.
_running: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Task]] = {}
_running_lock = threading.Lock()


def transcript_spawn(*, transcript_id: int) -> threading.Thread:
    thread = threading.Thread(target=_thread_main, args=(transcript_id,), name=f"transcript-{transcript_id}", daemon=True)
    thread.start()
    return thread


def _thread_main(transcript_id: int) -> None:
    try:
        asyncio.run(_run_registered(transcript_id))
    except Exception:
        logger.exception("transcript %s crashed", transcript_id)
    finally:
        close_old_connections()


async def _run_registered(transcript_id: int) -> None:
    with _running_lock:
        _running[transcript_id] = (asyncio.get_running_loop(), asyncio.current_task())
    try:
        await transcript_execute(transcript_id=transcript_id)
    finally:
        with _running_lock:
            _running.pop(transcript_id, None)


def transcript_cancel(*, transcript: Transcript) -> Transcript:
    """Stop: the piece in flight is abandoned here, or at the next piece in another process."""
    if not transcript.is_active:
        return transcript
    Transcript.objects.filter(pk=transcript.pk).update(cancel_requested=True)
    with _running_lock:
        found = _running.get(transcript.pk)
    if found:
        loop, task = found
        loop.call_soon_threadsafe(task.cancel)
    transcript.refresh_from_db()
    return transcript


def _load(transcript_id: int) -> tuple[Transcript, bytes]:
    transcript = Transcript.objects.select_related("provider", "team", "user").get(pk=transcript_id)
    Transcript.objects.filter(pk=transcript_id).update(status=TranscriptStatus.RUNNING)
    with transcript.audio.open("rb") as handle:
        return transcript, handle.read()


def _progress(transcript_id: int, *, done_s: float, chunks_done: int, text: str, segments: list[dict[str, Any]]) -> bool:
    Transcript.objects.filter(pk=transcript_id).update(done_s=done_s, chunks_done=chunks_done, text=text, segments=segments)
    return Transcript.objects.filter(pk=transcript_id, cancel_requested=True).exists()


def _params(transcript: Transcript) -> dict[str, Any]:
    params: dict[str, Any] = {"model": transcript.model, "response_format": transcript.response_format}
    if transcript.language:
        params["language"] = transcript.language
    if transcript.prompt:
        params["prompt"] = transcript.prompt
    if transcript.temperature is not None:
        params["temperature"] = transcript.temperature
    if transcript.response_format == "verbose_json":
        params["timestamp_granularities"] = ["segment"]
    return params


async def transcript_execute(*, transcript_id: int) -> Transcript:
    """Send the audio (in pieces if long), collect text and segments, record one Run."""
    transcript, content = await database_sync_to_async(_load)(transcript_id)
    provider = transcript.provider
    if provider is None:
        return await database_sync_to_async(_finish)(transcript_id, TranscriptStatus.FAILED, "The provider of this transcript was removed.", None, {})
    decoded = await asyncio.to_thread(audio.decode, content, filename=transcript.filename)
    plan = audio.plan_chunks(decoded.samples, chunk_s=_setting("SPEECH_CHUNK_SECONDS", CHUNK_SECONDS))
    impl = provider_for(provider)
    params = _params(transcript)
    translate = transcript.task == Task.TRANSLATE
    state: dict[str, Any] = {"text": [], "segments": [], "language": "", "usage": {"input": 0, "output": 0, "reported": False},
                             "raw": {}, "skipped": 0, "calls": 0, "done_s": 0.0}

    async def call() -> dict[str, Any]:
        for number, (start, end) in enumerate(plan, start=1):
            piece = decoded.samples[start:end]
            offset = start / audio.RATE
            if audio.Decoded(samples=piece, duration_s=len(piece) / audio.RATE).silent:
                # Pure silence is not sent: Whisper invents words ("You") for it, and it is billed.
                state["skipped"] += 1
            else:
                if len(plan) == 1:
                    upload = Upload(transcript.filename, content, transcript.content_type or "application/octet-stream")
                else:
                    upload = Upload(f"part-{number}.wav", audio.wav(piece), "audio/wav")
                answer = await impl.transcription(upload, params, translate=translate)
                state["calls"] += 1
                text, segments, language, usage = audio.parse_answer(answer, fmt=transcript.response_format)
                if len(plan) == 1:
                    state["raw"] = answer if isinstance(answer, dict) else {"body": answer}
                if text:
                    state["text"].append(text)
                state["segments"].extend(
                    {"start": round(s["start"] + offset, 3), "end": round(min(s["end"] + offset, end / audio.RATE), 3), "text": s["text"]}
                    for s in segments if s["text"]
                )
                state["language"] = state["language"] or language
                if usage and usage.get("type") == "tokens":
                    state["usage"]["reported"] = True
                    state["usage"]["input"] += int(usage.get("input_tokens") or 0)
                    state["usage"]["output"] += int(usage.get("output_tokens") or 0)
            state["done_s"] = end / audio.RATE
            cancelled = await database_sync_to_async(_progress)(
                transcript_id, done_s=end / audio.RATE, chunks_done=number, text=" ".join(state["text"]), segments=state["segments"],
            )
            if cancelled and number < len(plan):
                raise asyncio.CancelledError  # the Run is recorded as cancelled
        return {"pieces": len(plan)}

    def usage() -> dict[str, int]:
        text = " ".join(state["text"])
        if state["usage"]["reported"]:
            prompt, completion = state["usage"]["input"], state["usage"]["output"]
        else:
            prompt = tokens.count_text(transcript.prompt, model=transcript.model) if transcript.prompt else 0
            completion = tokens.count_text(text, model=transcript.model) if text else 0
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def summarize(result: dict[str, Any]) -> tuple[dict[str, Any], str, dict[str, Any] | None]:
        output = {"duration_s": round(decoded.duration_s, 3), "segments": len(state["segments"]), "language": state["language"],
                  "pieces": len(plan), "calls": state["calls"], "silent_pieces": state["skipped"], "format": transcript.response_format}
        return output, " ".join(state["text"]), usage()

    stored = {**params, "task": transcript.task,
              "input": f"{transcript.filename} ({transcript.size_bytes:,} bytes, {decoded.duration_s:.1f} s)"}
    capability = Capability.TRANSLATION if translate else Capability.TRANSCRIPTION
    status, error = TranscriptStatus.SUCCEEDED, ""
    run_id = None
    try:
        _, run = await call_recorded(
            team=transcript.team, user=transcript.user, provider=provider, capability=capability, model=transcript.model,
            request=stored, call=call, summarize=summarize, group=f"transcript-{transcript_id}",
        )
        run_id = run.pk
    except ProxyError as exc:
        what = "translation" if translate else "speech to text"
        status, error = TranscriptStatus.FAILED, _lacks(exc, provider=provider, what=what, path="/audio/translations" if translate else "/audio/transcriptions").message
    except asyncio.CancelledError:
        heard = sum(1 for _ in state["segments"])
        status = TranscriptStatus.CANCELLED
        error = f"Stopped; the transcript of the first {state['done_s']:.0f} s ({heard} segment{'s' if heard != 1 else ''}) is kept."
    except Exception as exc:  # a bug must still leave a finished job behind
        logger.exception("transcript %s failed", transcript_id)
        status, error = TranscriptStatus.FAILED, f"Playground failed: {type(exc).__name__}: {exc}"
    extra = {"text": " ".join(state["text"]), "segments": state["segments"], "detected_language": state["language"][:40],
             "raw": state["raw"], "seconds": decoded.duration_s, "usage": usage()}
    return await asyncio.shield(database_sync_to_async(_finish)(transcript_id, status, error, run_id, extra))


def _finish(transcript_id: int, status: str, error: str, run_id: int | None, extra: dict[str, Any]) -> Transcript:
    transcript = Transcript.objects.select_related("provider", "team").get(pk=transcript_id)
    run = Run.objects.filter(pk=run_id).first() if run_id else None
    if run is None:
        run = Run.objects.filter(team=transcript.team, group=f"transcript-{transcript_id}").order_by("-id").first()
    transcript.status = status
    transcript.error = error
    if extra:
        transcript.text = extra["text"]
        transcript.segments = extra["segments"]
        transcript.detected_language = extra["detected_language"]
        transcript.raw = extra["raw"]
    if status == TranscriptStatus.SUCCEEDED:
        transcript.done_s = transcript.duration_s
        transcript.chunks_done = transcript.chunks
    if run is not None:
        transcript.run = run
        heard = transcript.done_s if status != TranscriptStatus.SUCCEEDED else transcript.duration_s
        usage = extra.get("usage") or {}
        run.cost = audio_cost(team=transcript.team, provider=transcript.provider, model=transcript.model, seconds=heard,
                              prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens"))
        run.output = {**(run.output or {}), "duration_s": round(transcript.duration_s, 3), "rtf": _rtf(run.total_ms, heard)}
        run.output_file.name = transcript.audio.name  # the Run keeps the audio it heard
        fields = ["cost", "output", "output_file"]
        if run.total_tokens is None and usage:  # stopped or failed: count what was heard
            run.prompt_tokens, run.completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
            run.total_tokens, run.usage_counted = usage.get("total_tokens"), True
            fields += ["prompt_tokens", "completion_tokens", "total_tokens", "usage_counted"]
        run.save(update_fields=fields)
        if run.error and not transcript.error:
            transcript.error = run.error
    transcript.finished_at = timezone.now()
    transcript.save()
    return transcript


def transcript_delete(*, transcript: Transcript) -> None:
    if transcript.is_active:
        transcript_cancel(transcript=transcript)
    name = transcript.audio.name
    transcript.delete()
    if name and not Run.objects.filter(output_file=name).exists():
        transcript.audio.storage.delete(name)

