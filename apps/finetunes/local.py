"""Local fine-tuning jobs: one at a time, each in a child process (apps.finetunes.trainer).

The runner starts the trainer, turns each JSON line it prints into events, metrics and
checkpoints, and settles the job when it exits. Cancelling sends SIGTERM: the trainer stops
before its next step and keeps the checkpoints it wrote.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from apps.finetunes.bases import LOCAL_BASE
from apps.finetunes.models import FineTuneJob, JobCheckpoint, JobStatus
from apps.finetunes.services import event_add, job_fail
from apps.proxy.services import WORKER

logger = logging.getLogger(__name__)

REQUIRED = ("torch", "transformers", "peft", "gguf")


def missing_packages() -> list[str]:
    """Packages local fine-tuning needs that are not installed (`make finetune-deps`)."""
    return [name for name in REQUIRED if importlib.util.find_spec(name) is None]


def base_cache_dir() -> Path:
    return Path(settings.VAR_DIR) / "finetunes" / "base" / LOCAL_BASE


def jobs_dir() -> Path:
    return Path(settings.VAR_DIR) / "finetunes" / "jobs"


def model_name(job: FineTuneJob) -> str:
    """OpenAI's shape, ft:<base>:<org>:<suffix>:<id>, with the team as the org."""
    return f"ft:{LOCAL_BASE}:{job.team.slug}:{job.suffix}:ftjob-{job.pk}"


class LocalRunner:
    """The one local job this process runs (None when idle)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.job_id: int | None = None
        self.process: subprocess.Popen | None = None
        self.thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self.job_id is not None

    def start_next(self) -> int | None:
        """Start the oldest queued local job if nothing runs (here or in another process)."""
        with self.lock:
            if self.busy or FineTuneJob.objects.filter(local=True, status=JobStatus.RUNNING).exists():
                return None
            job = FineTuneJob.objects.filter(local=True, status=JobStatus.QUEUED).order_by("created_at", "id").first()
            if job is None:
                return None
            claimed = FineTuneJob.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
                status=JobStatus.RUNNING, worker=WORKER, started_at=timezone.now())
            if not claimed:
                return None
            self.job_id = job.pk
        self.thread = threading.Thread(target=self._run_in_thread, args=(job.pk,), name=f"finetune-job-{job.pk}", daemon=True)
        self.thread.start()
        return job.pk

    def _run_in_thread(self, job_id: int) -> None:
        try:
            run_job(FineTuneJob.objects.get(pk=job_id), runner=self)
        except Exception:
            logger.exception("local fine-tuning job %s crashed", job_id)
            job_fail(job=FineTuneJob.objects.get(pk=job_id), message="The local job crashed; see the server log.", code="internal_error")
        finally:
            with self.lock:
                self.job_id, self.process = None, None
            close_old_connections()

    def check_cancel(self) -> None:
        """Pass a cancel request (set by any process) on to the trainer."""
        if self.job_id is None or self.process is None:
            return
        if FineTuneJob.objects.filter(pk=self.job_id, cancel_requested=True).exists():
            terminate(self.process)


def terminate(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            process.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass


runner = LocalRunner()


def _config(job: FineTuneJob, output: Path) -> dict[str, Any]:
    def copy(file, name: str) -> str | None:
        if file is None:
            return None
        target = output / name
        with file.file.open("rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        return str(target)

    return {
        "base_model": LOCAL_BASE,
        "base_cache": str(base_cache_dir()),
        "train_path": copy(job.training_file, "train.jsonl"),
        "valid_path": copy(job.validation_file, "valid.jsonl"),
        "output_dir": str(output),
        "epochs": job.n_epochs or 3,
        "batch_size": job.batch_size or 4,
        "learning_rate_multiplier": job.learning_rate_multiplier or 1.0,
        "seed": job.seed,
        "max_length": 512,
        "threads": getattr(settings, "ENGINE_THREADS", None),
    }


def run_job(job: FineTuneJob, *, runner: LocalRunner | None = None, on_event=None) -> FineTuneJob:
    """Run a local job to its end in the calling thread (the worker calls this in its own).

    The job must already be marked running. `on_event(event_dict)` is called for every
    line the trainer prints (tests use it to cancel at a chosen moment).
    """
    missing = missing_packages()
    if missing:
        return job_fail(job=job, code="missing_packages",
                        message=f"Local fine-tuning needs {', '.join(missing)}: run `make finetune-deps` and restart the server.")
    output = jobs_dir() / str(job.pk)
    output.mkdir(parents=True, exist_ok=True)
    (output / "CANCEL").unlink(missing_ok=True)
    config_path = output / "config.json"
    config_path.write_text(json.dumps(_config(job, output)))
    FineTuneJob.objects.filter(pk=job.pk).update(output_dir=str(output), status=JobStatus.RUNNING, worker=WORKER,
                                                 started_at=job.started_at or timezone.now())
    job.refresh_from_db()
    event_add(job=job, message="Started on the local engine (CPU).")
    log = open(output / "trainer.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "apps.finetunes.trainer", str(config_path)],
        cwd=str(settings.BASE_DIR), stdout=subprocess.PIPE, stderr=log,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )
    if runner is not None:
        runner.process = process
    final: dict[str, Any] | None = None
    try:
        for raw in process.stdout:  # one JSON object per line, written as they happen
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if event.get("event") in ("succeeded", "cancelled", "failed"):
                final = event
            else:
                _apply(job, event)
            if on_event is not None:
                on_event(event)
            if FineTuneJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
                terminate(process)
        code = process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    return _settle(job, final, code, output)


def _apply(job: FineTuneJob, event: dict[str, Any]) -> None:
    kind = event.get("event")
    if kind == "message":
        event_add(job=job, message=str(event.get("message", "")))
    elif kind == "metrics":
        step, total = int(event["step"]), int(event.get("total_steps") or 0)
        message = f"Step {step}/{total}: training loss={event['train_loss']:.4f}"
        if event.get("valid_loss") is not None:
            message += f", validation loss={event['valid_loss']:.4f}"
        data = {k: event[k] for k in ("step", "total_steps", "epoch", "train_loss", "valid_loss") if k in event}
        event_add(job=job, message=message, type="metrics", data=data, step=step)
        if total and job.total_steps != total:
            job.total_steps = total
            FineTuneJob.objects.filter(pk=job.pk).update(total_steps=total)
    elif kind == "checkpoint":
        step = int(event["step"])
        metrics = {k: event[k] for k in ("step", "epoch", "train_loss", "valid_loss") if k in event}
        JobCheckpoint.objects.create(job=job, step=step, metrics=metrics, path=str(event.get("path", "")),
                                     model_id=f"{model_name(job)}:ckpt-step-{step}", created_at=timezone.now())
        event_add(job=job, message=f"Checkpoint saved at step {step} (epoch {event.get('epoch')}).")


def _settle(job: FineTuneJob, final: dict[str, Any] | None, code: int, output: Path) -> FineTuneJob:
    job.refresh_from_db()
    kind = (final or {}).get("event")
    now = timezone.now()
    if kind == "succeeded":
        job.status = JobStatus.SUCCEEDED
        job.fine_tuned_model = model_name(job)
        job.trained_tokens = int(final.get("trained_tokens") or 0)
        job.finished_at = now
        job.save(update_fields=["status", "fine_tuned_model", "trained_tokens", "finished_at"])
        event_add(job=job, message=f"The job has successfully completed in {final.get('seconds', '?')} s. "
                                   f"New fine-tuned model: {job.fine_tuned_model}")
    elif kind == "cancelled" or job.cancel_requested:
        job.status = JobStatus.CANCELLED
        job.finished_at = now
        job.save(update_fields=["status", "finished_at"])
        kept = job.checkpoints.count()
        event_add(job=job, level="warn", message=f"Cancelled at step {(final or {}).get('step', '?')}; "
                                                 f"{kept} checkpoint{'s' if kept != 1 else ''} kept.")
    else:
        message = (final or {}).get("message") or f"The training process stopped unexpectedly (exit code {code}); see {output / 'trainer.log'}."
        job_fail(job=job, message=message, code="training_failed")
    return job
