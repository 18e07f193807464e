"""The background worker that follows fine-tuning jobs, so no browser tab has to.

One daemon thread per server process, started from apps.proxy.startup.on_server_start
(so `manage.py` commands and the autoreloader's parent never start one). Each tick it:
- polls upstream jobs that are still active (state, events, checkpoints);
- starts the next queued local job when none runs, and passes cancel requests on.
At start it first fails local jobs left 'running' by a process that died.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from apps.finetunes import services
from apps.finetunes.local import runner
from apps.finetunes.models import ACTIVE_STATUSES, FineTuneJob

logger = logging.getLogger(__name__)

_started = threading.Event()


def poll_seconds() -> float:
    return float(getattr(settings, "FINETUNE_POLL_SECONDS", 2.0))


def upstream_interval() -> float:
    return float(getattr(settings, "FINETUNE_UPSTREAM_POLL_SECONDS", 10.0))


def tick(*, upstream_every: float | None = None) -> None:
    """One round of work (tests call this directly)."""
    every = upstream_interval() if upstream_every is None else upstream_every
    due = timezone.now() - timedelta(seconds=every)
    jobs = (FineTuneJob.objects.filter(local=False, status__in=ACTIVE_STATUSES).exclude(upstream_id="")
            .select_related("provider", "team"))
    for job in jobs:
        if job.provider_id is None:
            services.job_fail(job=job, code="provider_removed",
                              message=f"The provider {job.provider_name} was removed from the team, so this job can no longer be followed.")
            continue
        if job.last_polled_at and job.last_polled_at > due:
            continue
        try:
            async_to_sync(services.job_poll)(job=job)
        except Exception:  # one bad job must not stop the others being followed
            logger.exception("polling fine-tuning job %s failed", job.pk)
    runner.check_cancel()
    runner.start_next()


def _loop() -> None:
    while True:
        try:
            tick()
        except DatabaseError:
            logger.warning("fine-tuning worker: database not ready", exc_info=True)
        except Exception:
            logger.exception("fine-tuning worker tick failed")
        finally:
            close_old_connections()
        time.sleep(poll_seconds())


def on_server_start() -> None:
    """Recover jobs from a dead process, then start the worker thread (once per process)."""
    if _started.is_set() or not getattr(settings, "FINETUNE_WORKER_ENABLED", True):
        return
    _started.set()
    try:
        services.jobs_recover()
    except DatabaseError:
        logger.warning("could not check for interrupted fine-tuning jobs (database not ready)", exc_info=True)
    threading.Thread(target=_loop, name="finetune-worker", daemon=True).start()
    logger.info("fine-tuning worker started")
