"""Writes for fine-tuning: training files, jobs, and what upstream jobs report.

Upstream calls go through the provider interface (apps.proxy.providers); creating a job is
recorded as a Run (apps.proxy.services.call_recorded). Local jobs are driven by
apps.finetunes.local from the background worker (apps.finetunes.worker).
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable
from typing import Any

import orjson
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Team
from apps.finetunes.bases import LOCAL_BASE, MIN_EXAMPLES, base_for
from apps.finetunes.models import ACTIVE_STATUSES, FineTuneJob, JobCheckpoint, JobEvent, JobStatus, TrainingFile
from apps.finetunes.validation import PREFERENCE, Report, validate_jsonl
from apps.proxy import services as proxy_services
from apps.proxy.errors import ProxyError
from apps.proxy.models import Capability, Provider, Run
from apps.proxy.providers import provider_for
from apps.proxy.providers.base import Upload

logger = logging.getLogger(__name__)

UPSTREAM_STATUS = {
    "validating_files": JobStatus.VALIDATING,
    "queued": JobStatus.QUEUED,
    "running": JobStatus.RUNNING,
    "succeeded": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
}


# -- training files -------------------------------------------------------------------------------

def training_file_validate(*, lines: Iterable[bytes | str], model: str) -> Report:
    return validate_jsonl(lines, model=model)


@transaction.atomic
def training_file_create(*, team: Team, user, upload: File, filename: str, model: str = LOCAL_BASE) -> tuple[TrainingFile | None, Report]:
    """Validate an uploaded JSONL file and keep it only if it is valid.

    Returns (file, report); file is None when the report has errors, so nothing broken is
    ever stored or sent to a provider.
    """
    upload.seek(0)
    report = validate_jsonl(_lines(upload), model=model)
    if not report.ok:
        return None, report
    upload.seek(0)
    row = TrainingFile(
        team=team,
        created_by=user if getattr(user, "is_authenticated", False) else None,
        filename=_safe_name(filename),
        bytes=upload.size or 0,
        format=report.format,
        examples=report.examples,
        total_tokens=report.total_tokens,
        report=report.as_dict(),
        validated_for=model,
    )
    row.file.save(row.filename, upload, save=False)
    row.save()
    logger.info("training file %s stored for team %s (%d examples)", row.pk, team.slug, row.examples)
    return row, report


def _lines(upload: File) -> Iterable[bytes]:
    """Lines of a (possibly huge, disk-backed) upload without reading it whole."""
    for chunk_line in upload:
        yield chunk_line


def _safe_name(filename: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", filename.rsplit("/", 1)[-1]).strip("-.") or "training"
    return name if name.endswith(".jsonl") else name + ".jsonl"


def examples_from_runs(runs: Iterable[Run]) -> list[dict[str, Any]]:
    """Saved chat runs as training examples: the conversation sent plus the answer received."""
    examples = []
    for run in runs:
        messages = [m for m in (run.input or {}).get("messages", []) if isinstance(m, dict)]
        choice = ((run.output or {}).get("choices") or [{}])[0]
        answer: dict[str, Any] = {"role": "assistant", "content": run.output_text or choice.get("text") or ""}
        if choice.get("tool_calls"):
            answer["tool_calls"] = choice["tool_calls"]
            if not answer["content"]:
                answer["content"] = None
        if not messages or (answer["content"] is None and not answer.get("tool_calls")):
            continue
        clean = [{k: v for k, v in m.items() if k in ("role", "content", "name", "tool_calls", "tool_call_id")} for m in messages]
        examples.append({"messages": clean + [answer]})
    return examples


@transaction.atomic
def training_file_from_runs(*, team: Team, user, runs: list[Run], filename: str, model: str = LOCAL_BASE) -> tuple[TrainingFile | None, Report]:
    examples = examples_from_runs(runs)
    content = b"".join(orjson.dumps(e) + b"\n" for e in examples)
    upload = ContentFile(content, name=_safe_name(filename or "from-chat-runs"))
    return training_file_create(team=team, user=user, upload=upload, filename=upload.name, model=model)


def training_file_revalidate(*, file: TrainingFile, model: str) -> Report:
    """The report again, for another base model (limits, images and prices differ)."""
    with file.file.open("rb") as handle:
        report = validate_jsonl(handle, model=model)
    return report


def training_file_delete(*, file: TrainingFile) -> list[str]:
    """Delete the file here and every provider's copy. Returns problems with upstream copies
    (the local copy is deleted regardless: the team asked for it to be gone)."""
    problems = []
    for provider_id, upstream_id in (file.upstream_ids or {}).items():
        provider = Provider.objects.filter(pk=provider_id, team=file.team).first()
        if provider is None:
            continue
        try:
            async_to_sync(provider_for(provider).file_delete)(upstream_id)
        except ProxyError as exc:
            problems.append(f"{provider.name}: {exc.message}")
    file.file.delete(save=False)
    file.delete()
    return problems


async def _ensure_uploaded(file: TrainingFile, provider: Provider) -> str:
    key = str(provider.pk)
    if key in (file.upstream_ids or {}):
        return file.upstream_ids[key]

    def read() -> bytes:
        with file.file.open("rb") as handle:
            return handle.read()

    content = await database_sync_to_async(read)()
    reply = await provider_for(provider).file_upload(Upload(filename=file.filename, content=content, content_type="application/jsonl"), "fine-tune")
    upstream_id = str(reply.get("id") or "")
    if not upstream_id:
        raise ProxyError(f"{provider.name} accepted the file but returned no file id.", code="bad_response")
    file.upstream_ids = {**(file.upstream_ids or {}), key: upstream_id}
    await database_sync_to_async(file.save)(update_fields=["upstream_ids"])
    return upstream_id


# -- jobs --------------------------------------------------------------------------------------------

def event_add(*, job: FineTuneJob, message: str, level: str = "info", type: str = "message", data: dict | None = None,
              step: int | None = None, upstream_id: str = "", at: dt.datetime | None = None) -> JobEvent:
    return JobEvent.objects.create(job=job, message=message, level=level, type=type, data=data or {}, step=step,
                                   upstream_id=upstream_id, created_at=at or timezone.now())


def job_create(
    *,
    team: Team,
    user,
    provider: Provider,
    base_model: str,
    training_file: TrainingFile,
    validation_file: TrainingFile | None = None,
    n_epochs: int | None = None,
    batch_size: int | None = None,
    learning_rate_multiplier: float | None = None,
    suffix: str = "",
    seed: int | None = None,
) -> FineTuneJob:
    """Create a job. Local jobs are queued for the worker; upstream jobs are created there now.

    Raises ValidationError for what the team can fix in the form (the reason in words).
    An upstream that refuses the job leaves a failed job with its error shown.
    """
    if training_file.team_id != team.pk or (validation_file and validation_file.team_id != team.pk):
        raise ValidationError("That file does not exist in your team.")
    local = provider.is_local
    method = "dpo" if training_file.format == PREFERENCE else "supervised"
    if validation_file and validation_file.format != training_file.format:
        raise ValidationError("The validation file must be in the same format as the training file.")
    if local:
        from apps.finetunes.local import missing_packages

        missing = missing_packages()
        if missing:
            raise ValidationError(f"Local fine-tuning needs {', '.join(missing)}: run `make finetune-deps` and restart the server.")
        if method == "dpo":
            raise ValidationError("The local engine trains on chat (supervised) files; preference (DPO) files need an OpenAI provider.")
        base_model = LOCAL_BASE
    elif training_file.examples < MIN_EXAMPLES:
        raise ValidationError(f"OpenAI needs at least {MIN_EXAMPLES} training examples; this file has {training_file.examples}.")
    base = base_for(base_model)
    if base and not base.vision and training_file.validation.images:
        raise ValidationError(f"The training file has images, and {base_model} does not take images.")
    report = training_file.validation
    estimate = report.estimate(epochs=n_epochs, model=base_model)
    job = FineTuneJob.objects.create(
        team=team,
        created_by=user if getattr(user, "is_authenticated", False) else None,
        provider=provider,
        provider_name=provider.name,
        local=local,
        base_model=base_model,
        method=method,
        training_file=training_file,
        validation_file=validation_file,
        n_epochs=n_epochs,
        batch_size=batch_size,
        learning_rate_multiplier=learning_rate_multiplier,
        suffix=suffix.strip()[:64],
        seed=seed,
        status=JobStatus.QUEUED if local else JobStatus.VALIDATING,
        estimated_cost=estimate["cost"],
    )
    cost = "free, on this machine" if local else (f"${estimate['cost']}" if estimate["cost"] is not None else "unknown cost")
    event_add(job=job, message=f"Created fine-tuning job: {training_file.examples} examples x {estimate['epochs']} epochs "
                               f"= about {estimate['training_tokens']:,} training tokens ({cost}).")
    if local:
        event_add(job=job, message="Queued for the local engine (one job runs at a time).")
        return job
    try:
        async_to_sync(_upstream_create)(job=job, user=user)
    except ProxyError as exc:
        job_fail(job=job, message=exc.message, code=exc.code)
    return job


async def _upstream_create(*, job: FineTuneJob, user) -> None:
    provider = job.provider
    training_id = await _ensure_uploaded(job.training_file, provider)
    validation_id = await _ensure_uploaded(job.validation_file, provider) if job.validation_file else None
    hyper = {k: v for k, v in {"n_epochs": job.n_epochs, "batch_size": job.batch_size,
                               "learning_rate_multiplier": job.learning_rate_multiplier}.items() if v is not None}
    request: dict[str, Any] = {"model": job.base_model, "training_file": training_id}
    if validation_id:
        request["validation_file"] = validation_id
    if job.suffix:
        request["suffix"] = job.suffix
    if job.seed is not None:
        request["seed"] = job.seed
    if job.method == "dpo":
        request["method"] = {"type": "dpo", "dpo": {"hyperparameters": hyper}}
    elif hyper:
        request["method"] = {"type": "supervised", "supervised": {"hyperparameters": hyper}}
    impl = provider_for(provider)
    reply, _run = await proxy_services.call_recorded(
        team=job.team, user=user, provider=provider, capability=Capability.FINETUNE, model=job.base_model,
        request=request, call=lambda: impl.finetune_create(request),
        summarize=lambda r: (r, f"fine-tuning job {r.get('id', '')} {r.get('status', '')}".strip(), None),
    )
    await database_sync_to_async(_apply_upstream_job)(job, reply)


def job_fail(*, job: FineTuneJob, message: str, code: str = "failed") -> FineTuneJob:
    job.status = JobStatus.FAILED
    job.error = message
    job.error_code = code
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error", "error_code", "finished_at"])
    event_add(job=job, message=message, level="error")
    return job


def job_cancel(*, job: FineTuneJob) -> FineTuneJob:
    """Cancel. Upstream: ask the provider. Local: a queued job stops now, a running one
    within one training step (the worker that runs it sees the flag)."""
    if not job.is_active:
        raise ValidationError(f"The job is already {job.get_status_display().lower()}.")
    if job.local:
        if job.status == JobStatus.RUNNING:
            FineTuneJob.objects.filter(pk=job.pk).update(cancel_requested=True)
            job.cancel_requested = True
            event_add(job=job, message="Cancellation requested: the job stops after the current step.", level="warn")
        else:
            job.status = JobStatus.CANCELLED
            job.finished_at = timezone.now()
            job.save(update_fields=["status", "finished_at"])
            event_add(job=job, message="Cancelled before it started.", level="warn")
        return job
    if job.upstream_id:
        try:
            reply = async_to_sync(provider_for(job.provider).finetune_cancel)(job.upstream_id)
        except ProxyError as exc:
            raise ValidationError(f"{job.provider_name} could not cancel the job: {exc.message}") from exc
        _apply_upstream_job(job, reply)
    else:
        job.status = JobStatus.CANCELLED
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "finished_at"])
    event_add(job=job, message="Cancelled.", level="warn")
    return job


# -- following upstream jobs ----------------------------------------------------------------------------

def _apply_upstream_job(job: FineTuneJob, reply: dict[str, Any]) -> None:
    """Fold a fine_tuning.job object into the row (status, model, error, tokens)."""
    fields = ["last_polled_at"]
    job.last_polled_at = timezone.now()
    if reply.get("id") and not job.upstream_id:
        job.upstream_id = str(reply["id"])
        fields.append("upstream_id")
    status = UPSTREAM_STATUS.get(str(reply.get("status") or ""))
    if status and status != job.status:
        job.status = status
        fields.append("status")
        if status == JobStatus.RUNNING and not job.started_at:
            job.started_at = timezone.now()
            fields.append("started_at")
        if status not in ACTIVE_STATUSES:
            job.finished_at = timezone.now()
            fields.append("finished_at")
    if reply.get("fine_tuned_model"):
        job.fine_tuned_model = str(reply["fine_tuned_model"])
        fields.append("fine_tuned_model")
    if reply.get("trained_tokens") is not None:
        job.trained_tokens = int(reply["trained_tokens"])
        fields.append("trained_tokens")
    error = reply.get("error")
    if isinstance(error, dict) and (error.get("message") or error.get("code")):
        message = str(error.get("message") or error.get("code"))
        if error.get("param"):
            message += f" (parameter: {error['param']})"
        if message != job.error:
            job.error = message
            job.error_code = str(error.get("code") or "upstream_error")[:60]
            fields += ["error", "error_code"]
    job.save(update_fields=sorted(set(fields)))


def _apply_upstream_events(job: FineTuneJob, events: list[dict[str, Any]]) -> int:
    known = set(job.events.exclude(upstream_id="").values_list("upstream_id", flat=True))
    added = 0
    for event in sorted(events, key=lambda e: (e.get("created_at") or 0, str(e.get("id")))):
        upstream_id = str(event.get("id") or "")
        if not upstream_id or upstream_id in known:
            continue
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        step = data.get("step") if isinstance(data.get("step"), int) else None
        event_add(job=job, message=str(event.get("message") or ""), level=str(event.get("level") or "info")[:10],
                  type=str(event.get("type") or "message")[:20], data=data, step=step, upstream_id=upstream_id,
                  at=_timestamp(event.get("created_at")))
        if data.get("total_steps") and job.total_steps != data["total_steps"]:
            job.total_steps = int(data["total_steps"])
            job.save(update_fields=["total_steps"])
        known.add(upstream_id)
        added += 1
    return added


def _apply_upstream_checkpoints(job: FineTuneJob, checkpoints: list[dict[str, Any]]) -> None:
    known = set(job.checkpoints.values_list("upstream_id", flat=True))
    for item in checkpoints:
        upstream_id = str(item.get("id") or "")
        if not upstream_id or upstream_id in known:
            continue
        metrics = item.get("metrics") if isinstance(item.get("metrics"), dict) else {}
        JobCheckpoint.objects.create(
            job=job, upstream_id=upstream_id, step=int(item.get("step_number") or metrics.get("step") or 0),
            metrics=metrics, model_id=str(item.get("fine_tuned_model_checkpoint") or ""),
            created_at=_timestamp(item.get("created_at")),
        )


def _timestamp(value: Any) -> dt.datetime:
    if isinstance(value, (int, float)) and value > 0:
        return dt.datetime.fromtimestamp(value, tz=dt.timezone.utc)
    return timezone.now()


async def job_poll(*, job: FineTuneJob) -> FineTuneJob:
    """One poll of an upstream job: its state, new events, new checkpoints.

    A provider that cannot be reached is logged as a warning event (once per kind of
    failure) and polled again later: the job is not failed for a network blip.
    """
    if job.local or not job.upstream_id or job.provider_id is None:
        return job
    impl = provider_for(job.provider)
    try:
        reply = await impl.finetune_retrieve(job.upstream_id)
        events = await impl.finetune_events(job.upstream_id)
        checkpoints: list[dict[str, Any]] = []
        try:
            checkpoints = await impl.finetune_checkpoints(job.upstream_id)
        except ProxyError as exc:  # some compatible servers have no checkpoints endpoint
            logger.info("no checkpoints for job %s: %s", job.pk, exc.message)
    except ProxyError as exc:
        await database_sync_to_async(_poll_failed)(job, exc)
        return job

    def apply() -> None:
        _apply_upstream_events(job, events)
        _apply_upstream_checkpoints(job, checkpoints)
        _apply_upstream_job(job, reply)
        if job.status == JobStatus.FAILED and job.error and not job.events.filter(level="error", message=job.error).exists():
            event_add(job=job, message=job.error, level="error")

    await database_sync_to_async(apply)()
    return job


def _poll_failed(job: FineTuneJob, exc: ProxyError) -> None:
    job.last_polled_at = timezone.now()
    job.save(update_fields=["last_polled_at"])
    message = f"Could not reach {job.provider_name} to follow the job: {exc.message}"
    last = job.events.order_by("-created_at", "-id").first()
    if not last or last.message != message:
        event_add(job=job, message=message, level="warn")


# -- recovery -----------------------------------------------------------------------------------------

def jobs_recover(*, alive: callable | None = None) -> int:
    """At server start: local jobs left running by a process that is gone are failed.

    Training state does not survive the process; the checkpoints written until then are
    kept and listed, so nothing is stuck 'running' forever.
    """
    from apps.proxy.services import worker_gone

    stuck = [job for job in FineTuneJob.objects.filter(local=True, status=JobStatus.RUNNING)
             if worker_gone(job.worker, alive=alive)]
    for job in stuck:
        kept = job.checkpoints.count()
        saved = (f"{kept} checkpoint{'s' if kept != 1 else ''} saved until then {'are' if kept != 1 else 'is'} kept"
                 if kept else "No checkpoint had been saved yet")
        job_fail(job=job, code="interrupted",
                 message=f"The server restarted while this job was running, so it stopped. {saved}; start a new job to train again.")
    if stuck:
        logger.warning("marked %d local fine-tuning jobs failed (their server process had stopped)", len(stuck))
    return len(stuck)


def estimate_for(*, report: Report, model: str, epochs: int | None) -> dict[str, Any]:
    return report.estimate(epochs=epochs, model=model)

