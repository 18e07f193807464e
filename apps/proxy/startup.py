"""Work done once when a server process starts (from playground.asgi)."""
from __future__ import annotations

import logging

from django.db import DatabaseError

logger = logging.getLogger(__name__)


def on_server_start() -> None:
    """Recover from a previous process that died: its runs become 'interrupted'."""
    from apps.proxy.services import runs_mark_interrupted

    try:
        runs_mark_interrupted()
        from apps.evals.services import evaluations_mark_interrupted

        evaluations_mark_interrupted()
    except DatabaseError:  # not migrated yet: `make run` migrates first, tests set up their own
        logger.warning("could not check for interrupted runs (database not ready)", exc_info=True)

    # Fine-tuning: fail local jobs a dead process left running, then follow jobs in the background.
    from apps.finetunes.worker import on_server_start as finetunes_start

    finetunes_start()
