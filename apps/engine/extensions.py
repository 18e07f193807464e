"""A tiny registry for extra local chat models, e.g. a team's local fine-tunes.

Another app registers a source at startup (in its AppConfig.ready()):

    from apps.engine import extensions
    extensions.register_source(MySource())

A source has two methods:

    models(team_id: int) -> list[dict]
        OpenAI model objects the team may use, with "capabilities" (e.g. ["chat",
        "streaming"]), and optionally "context_length" and "description".
    chat(model_id: str, request: dict) -> AsyncIterator[dict] | None
        An async iterator of OpenAI `chat.completion.chunk` dicts (a final usage chunk
        {"choices": [], "usage": {...}} is welcome) when the source owns `model_id`,
        else None.

The local provider lists these models with its own and routes chat for them to the
source, under the same per-model scheduling (queue positions, one generation per model at
a time). Generation in a source should stop when its iterator is closed (aclose()).
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class ModelSource(Protocol):
    def models(self, team_id: int) -> list[dict[str, Any]]: ...

    def chat(self, model_id: str, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]] | None: ...


_sources: list[ModelSource] = []


def register_source(source: ModelSource) -> None:
    """Add a source once (registering the same object again is a no-op)."""
    if source not in _sources:
        _sources.append(source)


def unregister_source(source: ModelSource) -> None:
    if source in _sources:
        _sources.remove(source)


def sources() -> list[ModelSource]:
    return list(_sources)


def models_for_team(team_id: int) -> list[dict[str, Any]]:
    """Every source's models; a failing source is logged and skipped, never breaks the list."""
    found: list[dict[str, Any]] = []
    for source in _sources:
        try:
            found.extend(m for m in source.models(team_id) if isinstance(m, dict) and m.get("id"))
        except Exception:
            logger.exception("local model source %r failed to list models", source)
    return found


def owner_of(team_id: int, model_id: str) -> ModelSource | None:
    for source in _sources:
        try:
            if any(m.get("id") == model_id for m in source.models(team_id)):
                return source
        except Exception:
            logger.exception("local model source %r failed to list models", source)
    return None
