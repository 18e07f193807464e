"""Speech pages: text to speech and speech to text. Thin views over services and selectors."""
from __future__ import annotations

import logging
import re

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.decorators import team_required
from apps.accounts.models import Role
from apps.embeddings.downloads import UnsafeName, attachment, download_name, refused
from apps.proxy.errors import ProxyError
from apps.proxy.selectors import ModelEntry, model_choices, model_resolve, parse_model_key
from apps.speech import audio, selectors, services
from apps.speech.models import Task, Transcript

logger = logging.getLogger(__name__)

AUDIO_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav", "opus": "audio/ogg", "flac": "audio/flac", "aac": "audio/aac"}
TRANSCRIPT_DOWNLOADS = {"txt": "text/plain; charset=utf-8", "srt": "application/x-subrip; charset=utf-8",
                        "vtt": "text/vtt; charset=utf-8", "json": "application/json"}


def _errors(exc: ValidationError) -> str:
    return " ".join(exc.messages)


def _can_create(request) -> bool:
    return bool(request.membership and request.membership.allows(Role.EDITOR))


def _resolve(request, key: str) -> tuple:
    """(provider, model id, catalog entry or None) from the picker's value, or ValidationError."""
    try:
        provider_id, model = parse_model_key(key)
        provider, entry = async_to_sync(model_resolve)(team=request.team, model=model, provider_id=provider_id)
    except ProxyError as exc:
        raise ValidationError(exc.message) from None
    return provider, model, entry


def _first_key(index, selected: str) -> str:
    if selected and any(m.key == selected for m in index.models):
        return selected
    return index.models[0].key if index.models else ""


def _tts_options(request, key: str) -> dict:
    """Voices and formats of the chosen model's provider, for the form."""
    provider, model = None, ""
    try:
        provider, model, _ = _resolve(request, key) if key else (None, "", None)
    except ValidationError:
        pass
    voices, voice_error = selectors.voices_for(provider=provider, model=model)
    return {"voices": voices, "voice_error": voice_error, "formats": selectors.formats_for(provider=provider),
            "is_local": bool(provider and provider.is_local), "option_model": model}


# -- text to speech ------------------------------------------------------------------------------

@team_required(Role.VIEWER)
@require_http_methods(["GET", "POST"])
def index(request):
    index = async_to_sync(model_choices)(team=request.team, capability="tts")
    form = {"text": "", "model_key": request.GET.get("model", ""), "voice": "", "speed": "1.0", "response_format": "mp3", "instructions": ""}
    error, status, clip = "", 200, None
    if request.method == "POST":
        form = {k: request.POST.get(k, v) for k, v in form.items()}
        try:
            provider, model, _ = _resolve(request, form["model_key"])
            clip = services.speech_create(team=request.team, user=request.user, provider=provider, model=model, text=form["text"],
                                          voice=form["voice"], speed=form["speed"], response_format=form["response_format"],
                                          instructions=form["instructions"])
        except ValidationError as exc:
            error, status = _errors(exc), 400
        except ProxyError as exc:
            error, status = exc.message, exc.status if 400 <= exc.status < 500 else 502
        if clip is not None and not request.htmx:
            return redirect(f"{reverse('speech:index')}?clip={clip.pk}")
    elif request.GET.get("clip"):
        try:
            clip = selectors.clip_get(team=request.team, clip_id=request.GET["clip"])
        except Http404:  # an unknown or foreign clip in the query string: the empty page
            clip = None
    form["model_key"] = _first_key(index, form["model_key"])
    context = {"form": form, "index": index, "error": error, "clip": clip, "can_create": _can_create(request),
               "history": selectors.clips_for_team(team=request.team)[:20], **_tts_options(request, form["model_key"])}
    if request.htmx and request.method == "POST":
        # 200 even for an error: htmx does not swap 4xx answers, and the message must show.
        return render(request, "speech/tts.html#result", context)
    return render(request, "speech/tts.html", context, status=status)


@team_required(Role.VIEWER)
@require_GET
def tts_options(request):
    form = {"voice": request.GET.get("voice", ""), "response_format": request.GET.get("response_format", "mp3")}
    return render(request, "speech/tts.html#options", {"form": form, **_tts_options(request, request.GET.get("model_key", ""))})


def _serve_audio(request, *, file, fmt: str, default_name: str) -> HttpResponse:
    with file.open("rb") as handle:
        content = handle.read()
    if request.GET.get("download"):
        try:
            name = download_name(request.GET.get("name"), default=default_name, extension=fmt)
        except UnsafeName as exc:
            return refused(exc)
        return attachment(content, name=name, content_type=AUDIO_TYPES.get(fmt, "application/octet-stream"))
    if fmt == "pcm":
        content, fmt = audio.pcm_as_wav(content), "wav"  # raw samples: a browser needs a header
    content_type = AUDIO_TYPES.get(fmt, "application/octet-stream")
    # Byte ranges let the player seek (clicking a segment) without loading the whole file.
    wanted = _byte_range(request.headers.get("Range", ""), len(content))
    if wanted == "unsatisfiable":
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{len(content)}"
        return response
    if wanted is not None:
        start, end = wanted
        response = HttpResponse(content[start:end + 1], status=206, content_type=content_type)
        response["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
    else:
        response = HttpResponse(content, content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    response["Accept-Ranges"] = "bytes"
    return response


def _byte_range(header: str, size: int):
    """(start, end) inclusive for a single "bytes=a-b" range, None to send everything."""
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header or "")
    if not match or not (match.group(1) or match.group(2)) or size == 0:
        return None
    first, last = match.group(1), match.group(2)
    if first:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    else:  # the last N bytes
        start, end = max(size - int(last), 0), size - 1
    if start >= size or start > end:
        return "unsatisfiable"
    return start, end


@team_required(Role.VIEWER)
@require_GET
def clip_audio(request, clip_id: int):
    clip = selectors.clip_get(team=request.team, clip_id=clip_id)
    fmt = (clip.output or {}).get("format") or clip.output_file.name.rsplit(".", 1)[-1]
    return _serve_audio(request, file=clip.output_file, fmt=fmt, default_name=f"speech-{clip.pk}")


# -- speech to text ------------------------------------------------------------------------------

@team_required(Role.VIEWER)
@require_http_methods(["GET", "POST"])
def transcribe(request):
    index = async_to_sync(model_choices)(team=request.team, capability="stt")
    form = {"model_key": request.GET.get("model", ""), "task": Task.TRANSCRIBE, "language": "", "prompt": "",
            "temperature": "", "response_format": "verbose_json"}
    error, status = "", 200
    if request.method == "POST":
        form = {k: request.POST.get(k, v) for k, v in form.items()}
        upload = request.FILES.get("file")
        try:
            if upload is None:
                raise ValidationError("Choose an audio file, or record one.")
            limit = services.max_upload_bytes()
            if upload.size > limit:  # before reading it into memory
                raise ValidationError(f"{upload.name} is {upload.size / 1048576:.1f} MB; the limit is {limit / 1048576:.0f} MB per file. "
                                      "Upload a shorter or more compressed recording (mp3, ogg or webm).")
            provider, model, entry = _resolve(request, form["model_key"])
            transcript = services.transcript_start(
                team=request.team, user=request.user, provider=provider, model=model, filename=upload.name,
                content=upload.read(), content_type=upload.content_type or "", task=form["task"], language=form["language"],
                prompt=form["prompt"], temperature=form["temperature"], response_format=form["response_format"],
                capabilities=entry.capabilities if isinstance(entry, ModelEntry) and entry.known else None,
            )
            return redirect("speech:transcript", transcript_id=transcript.pk)
        except ValidationError as exc:
            error, status = _errors(exc), 400
    form["model_key"] = _first_key(index, form["model_key"])
    local_stt = [m for m in index.models if m.provider_kind == "local"]
    context = {"form": form, "index": index, "error": error, "formats": services.TRANSCRIPT_FORMATS, "tasks": Task.choices,
               "can_create": _can_create(request),
               "limit_mb": services.max_upload_bytes() / 1048576, "english_only": [m.key for m in local_stt if m.id.endswith(".en")],
               "recent": selectors.transcripts_for_team(team=request.team)[:20]}
    return render(request, "speech/stt.html", context, status=status)


def _transcript_context(transcript: Transcript, request=None) -> dict:
    return {"transcript": transcript, "can_create": request is not None and _can_create(request), "run": transcript.run, "segments": selectors.segment_rows(transcript=transcript)}


@team_required(Role.VIEWER)
@require_GET
def transcript(request, transcript_id: int):
    item = selectors.transcript_get(team=request.team, transcript_id=transcript_id)
    return render(request, "speech/transcript.html", _transcript_context(item, request))


@team_required(Role.VIEWER)
@require_GET
def transcript_progress(request, transcript_id: int):
    item = selectors.transcript_get(team=request.team, transcript_id=transcript_id)
    response = render(request, "speech/transcript.html#progress", _transcript_context(item, request))
    if not item.is_active and request.htmx:
        response["HX-Refresh"] = "true"  # the result is a whole page: load it
    return response


@team_required(Role.EDITOR)
@require_POST
def transcript_cancel(request, transcript_id: int):
    item = selectors.transcript_get(team=request.team, transcript_id=transcript_id)
    item = services.transcript_cancel(transcript=item)
    if request.htmx:
        return render(request, "speech/transcript.html#progress", _transcript_context(item, request))
    return redirect("speech:transcript", transcript_id=item.pk)


@team_required(Role.VIEWER)
@require_GET
def transcript_audio(request, transcript_id: int):
    item = selectors.transcript_get(team=request.team, transcript_id=transcript_id)
    ext = item.audio.name.rsplit(".", 1)[-1]
    response = _serve_audio(request, file=item.audio, fmt=ext, default_name=f"transcript-{item.pk}-audio")
    if not request.GET.get("download") and item.content_type.startswith(("audio/", "video/")):
        response["Content-Type"] = item.content_type  # what the browser recorded or the person uploaded
    return response


@team_required(Role.VIEWER)
@require_GET
def transcript_download(request, transcript_id: int):
    item = selectors.transcript_get(team=request.team, transcript_id=transcript_id)
    fmt = request.GET.get("format", "txt")
    if fmt not in TRANSCRIPT_DOWNLOADS:
        return HttpResponse("Choose format=txt, srt, vtt or json.", status=400, content_type="text/plain")
    stem = item.filename.rsplit(".", 1)[0]
    default = "".join(c if c.isalnum() or c in " ._-()" else "_" for c in stem).strip(" ._-")[:80] or f"transcript-{item.pk}"
    try:
        name = download_name(request.GET.get("name"), default=default, extension=fmt)
    except UnsafeName as exc:
        return refused(exc)
    if fmt in ("srt", "vtt") and not item.has_timestamps:
        return HttpResponse(f"This transcript has no timestamps (it was made with output format {item.response_format}); "
                            "download txt or json, or transcribe again with verbose_json, srt or vtt.",
                            status=400, content_type="text/plain; charset=utf-8")
    if fmt == "txt":
        body = item.text + "\n"
    elif fmt == "srt":
        body = audio.as_srt(item.segments)
    elif fmt == "vtt":
        body = audio.as_vtt(item.segments)
    else:
        body = audio.as_json(text=item.text, segments=item.segments, language=item.detected_language or item.language,
                             duration_s=item.duration_s, model=item.model, task=item.task)
    return attachment(body.encode(), name=name, content_type=TRANSCRIPT_DOWNLOADS[fmt])


@team_required(Role.EDITOR)
@require_POST
def transcript_delete(request, transcript_id: int):
    item = selectors.transcript_get(team=request.team, transcript_id=transcript_id)
    services.transcript_delete(transcript=item)
    messages.success(request, f"Deleted the transcript of {item.filename}.")
    return redirect("speech:transcribe")
