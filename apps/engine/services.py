"""Writes for the engine: warming a model (loading it into memory ahead of the first call)."""
from __future__ import annotations

import logging

from apps.engine import catalog, runtime

logger = logging.getLogger(__name__)


def engine_warm(*, model: str) -> runtime.LoadInfo:
    """Load `model` now (a no-op if it is loaded). Raises ProxyError saying what is missing."""
    if catalog.get(model) is None:
        raise runtime.missing_error(model)
    info = runtime.warm(model)
    logger.info("warmed %s (%.2f s)", model, info.seconds)
    return info
