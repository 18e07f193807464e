"""Reads for the management page: what the engine has, what is loaded, what is running."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from apps.engine import catalog, runtime
from apps.engine.scheduler import scheduler


@dataclass
class ModelStatus:
    id: str
    kind: str
    description: str
    package: str
    capabilities: list[str]
    context_length: int | None
    present: bool
    path: str
    size_bytes: int | None
    loaded: bool
    load_seconds: float | None
    loaded_at: dt.datetime | None
    running: int
    queued: int
    capacity: int

    @property
    def kind_label(self) -> str:
        return {"chat": "Chat", "completion": "Completions", "embeddings": "Embeddings", "stt": "Speech to text", "tts": "Text to speech"}[self.kind]

    @property
    def scheduled(self) -> bool:
        """Text models go through the per-model queue; the rest take one call at a time."""
        return self.kind in ("chat", "completion")


def engine_models_status() -> list[ModelStatus]:
    stats = scheduler.stats()
    out = []
    for meta in catalog.LOCAL_MODELS.values():
        path = meta.locate()
        info = runtime.load_info(meta.id)
        queue = stats.get(meta.id, {})
        out.append(
            ModelStatus(
                id=meta.id,
                kind=meta.kind,
                description=meta.description,
                package=meta.package,
                capabilities=sorted(meta.capabilities),
                context_length=meta.context_length,
                present=path is not None,
                path=str(path or ""),
                size_bytes=meta.size_bytes() if path is not None else None,
                loaded=runtime.is_loaded(meta.id),
                load_seconds=info.seconds if info else None,
                loaded_at=dt.datetime.fromtimestamp(info.loaded_at, tz=dt.timezone.utc) if info else None,
                running=queue.get("running", 0),
                queued=queue.get("queued", 0),
                capacity=queue.get("capacity") or scheduler_capacity(),
            )
        )
    return out


def engine_model_status(*, model: str) -> ModelStatus | None:
    return next((m for m in engine_models_status() if m.id == model), None)


def engine_queues() -> list[dict]:
    """Every model with a queue (including local fine-tunes), busiest first."""
    rows = [{"model": model, **q} for model, q in scheduler.stats().items()]
    return sorted(rows, key=lambda r: (-(r["running"] + r["queued"]), r["model"]))


def scheduler_capacity() -> int:
    from django.conf import settings

    return max(1, int(getattr(settings, "ENGINE_CONCURRENCY_PER_MODEL", 1)))


def process_rss_bytes() -> int | None:
    """Resident memory of this process (Linux /proc), models included."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
