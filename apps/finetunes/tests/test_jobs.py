"""Jobs against the test upstream: create, follow (events, metrics, checkpoints), fail, cancel;
and local jobs left running by a dead server."""
from __future__ import annotations

import pytest
from django.urls import reverse

from apps.finetunes import services, worker
from apps.finetunes.models import FineTuneJob, JobStatus
from apps.finetunes.tests.helpers import chat_lines, stored_file
from apps.proxy.models import Run
from tests.upstream import Reply

pytestmark = pytest.mark.django_db(transaction=True)

JOB = {"object": "fine_tuning.job", "id": "ftjob-abc", "model": "gpt-4o-mini-2024-07-18", "status": "validating_files",
       "fine_tuned_model": None, "error": None, "trained_tokens": None, "created_at": 1700000000}


def metrics_event(n: int, step: int, train: float, valid: float | None = None) -> dict:
    data = {"step": step, "train_loss": train, "total_steps": 6}
    if valid is not None:
        data["valid_loss"] = valid
    return {"object": "fine_tuning.job.event", "id": f"ftevent-{n}", "created_at": 1700000000 + n, "level": "info",
            "message": f"Step {step}/6: training loss={train}", "data": data, "type": "metrics"}


def events_reply(*events) -> Reply:
    # OpenAI lists events newest first.
    return Reply(json={"object": "list", "data": list(reversed(events)), "has_more": False})


def checkpoints_reply(*items) -> Reply:
    return Reply(json={"object": "list", "data": list(items), "has_more": False})


def create_job(client, upstream, provider, training, validation=None, **extra):
    upstream.script("POST /v1/files", Reply(json={"id": "file-train", "object": "file", "purpose": "fine-tune"}),
                    Reply(json={"id": "file-valid", "object": "file", "purpose": "fine-tune"}))
    upstream.script("POST /v1/fine_tuning/jobs", Reply(json=JOB))
    data = {"model_key": f"{provider.pk}:gpt-4o-mini-2024-07-18", "training_file": training.pk,
            "validation_file": validation.pk if validation else "", "n_epochs": 3, "suffix": "support", "seed": 7, **extra}
    return client.post(reverse("finetunes:job_new"), data)


def test_upstream_job_flow(editor_client, team, editor, upstream, upstream_provider):
    training = stored_file(team, editor)
    validation = stored_file(team, editor, chat_lines(10), name="valid.jsonl")
    response = create_job(editor_client, upstream, upstream_provider, training, validation)
    job = FineTuneJob.objects.get(team=team)
    assert response.status_code == 302 and response["Location"] == reverse("finetunes:job_detail", args=[job.pk])
    assert job.upstream_id == "ftjob-abc" and job.status == JobStatus.VALIDATING
    # Both files went to the files API once, then the job referenced their ids.
    assert len(upstream.requests_to("/v1/files")) == 2
    body = upstream.requests_to("/v1/fine_tuning/jobs")[0].json
    assert body["training_file"] == "file-train" and body["validation_file"] == "file-valid"
    assert body["suffix"] == "support" and body["seed"] == 7
    assert body["method"] == {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}}
    training.refresh_from_db()
    assert training.upstream_ids == {str(upstream_provider.pk): "file-train"}
    assert Run.objects.filter(team=team, capability="finetune", status="succeeded").count() == 1

    # The worker follows it: running, with metrics events and a checkpoint.
    upstream.script(f"GET /v1/fine_tuning/jobs/ftjob-abc", Reply(json={**JOB, "status": "running"}))
    upstream.script("GET /v1/fine_tuning/jobs/ftjob-abc/events", events_reply(
        {"object": "fine_tuning.job.event", "id": "ftevent-0", "created_at": 1700000000, "level": "info", "message": "Fine-tuning job started", "data": {}, "type": "message"},
        metrics_event(1, 1, 2.5, 2.6), metrics_event(2, 2, 2.0), metrics_event(3, 3, 1.5, 1.7)))
    upstream.script("GET /v1/fine_tuning/jobs/ftjob-abc/checkpoints", checkpoints_reply(
        {"object": "fine_tuning.job.checkpoint", "id": "ftckpt-1", "created_at": 1700000003, "step_number": 3,
         "fine_tuned_model_checkpoint": "ft:gpt-4o-mini-2024-07-18:acme:support:abc:ckpt-step-3",
         "metrics": {"step": 3, "train_loss": 1.5, "valid_loss": 1.7}}))
    worker.tick(upstream_every=0)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.total_steps == 6
    page = editor_client.get(reverse("finetunes:job_detail", args=[job.pk])).content.decode()
    assert "Fine-tuning job started" in page and "Step 3/6: training loss=1.5" in page
    assert 'id="loss-chart"' in page and 'class="train" d="M' in page and 'class="valid" d="M' in page
    assert "ckpt-step-3" in page
    assert 'hx-trigger="every 2s"' in page  # the page keeps itself up to date while active

    # Polling again does not duplicate events; then it succeeds.
    upstream.script(f"GET /v1/fine_tuning/jobs/ftjob-abc", Reply(json={**JOB, "status": "succeeded", "trained_tokens": 1234,
                                                                       "fine_tuned_model": "ft:gpt-4o-mini-2024-07-18:acme:support:abc"}))
    upstream.script("GET /v1/fine_tuning/jobs/ftjob-abc/events", events_reply(metrics_event(3, 3, 1.5, 1.7), metrics_event(4, 6, 0.9, 1.1)))
    worker.tick(upstream_every=0)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.trained_tokens == 1234
    assert job.events.filter(type="metrics").count() == 4
    live = editor_client.get(reverse("finetunes:job_live", args=[job.pk]))
    assert live.status_code == 286  # htmx stops polling
    assert f'href="/chat/?model={upstream_provider.pk}:ft:gpt-4o-mini-2024-07-18:acme:support:abc"' in live.content.decode()
    # Finished jobs are not polled again.
    before = len(upstream.requests)
    worker.tick(upstream_every=0)
    assert len(upstream.requests) == before


def test_upstream_reporting_a_failed_job_shows_its_error(editor_client, team, editor, upstream, upstream_provider):
    create_job(editor_client, upstream, upstream_provider, stored_file(team, editor))
    upstream.script("GET /v1/fine_tuning/jobs/ftjob-abc", Reply(json={**JOB, "status": "failed", "error": {
        "code": "invalid_training_file", "param": "training_file",
        "message": "The job failed due to an invalid training file. Expected file to have JSONL format."}}))
    upstream.script("GET /v1/fine_tuning/jobs/ftjob-abc/events", events_reply())
    upstream.script("GET /v1/fine_tuning/jobs/ftjob-abc/checkpoints", checkpoints_reply())
    worker.tick(upstream_every=0)
    job = FineTuneJob.objects.get(team=team)
    assert job.status == JobStatus.FAILED and job.error_code == "invalid_training_file"
    page = editor_client.get(reverse("finetunes:job_detail", args=[job.pk])).content.decode()
    assert "The job failed:" in page and "Expected file to have JSONL format." in page and "(parameter: training_file)" in page


def test_upstream_refusing_the_job_fails_it_with_the_reason(editor_client, team, editor, upstream, upstream_provider):
    upstream.script("POST /v1/files", Reply(json={"id": "file-train"}))
    upstream.script("POST /v1/fine_tuning/jobs", Reply.error(400, "Model gpt-4o-mini-2024-07-18 is not available for fine-tuning.", code="model_not_available"))
    response = editor_client.post(reverse("finetunes:job_new"), {"model_key": f"{upstream_provider.pk}:gpt-4o-mini-2024-07-18",
                                                                 "training_file": stored_file(team, editor).pk})
    job = FineTuneJob.objects.get(team=team)
    assert job.status == JobStatus.FAILED and "not available for fine-tuning" in job.error
    page = editor_client.get(response["Location"]).content.decode()
    assert "not available for fine-tuning" in page


def test_validation_file_of_another_team_is_404(editor_client, team, editor, other_team, outsider, upstream, upstream_provider):
    theirs = stored_file(other_team, outsider)
    response = create_job(editor_client, upstream, upstream_provider, stored_file(team, editor), theirs)
    assert response.status_code == 404
    assert not FineTuneJob.objects.exists()
    assert not upstream.requests_to("/v1/files")


def test_provider_of_another_team_is_404(outsider_client, other_team, outsider, upstream_provider):
    mine = stored_file(other_team, outsider)
    response = outsider_client.post(reverse("finetunes:job_new"), {"model_key": f"{upstream_provider.pk}:gpt-4o-mini-2024-07-18", "training_file": mine.pk})
    # Not offered in the picker (another team's provider), so the form refuses it; never used.
    assert response.status_code in (200, 404) and not FineTuneJob.objects.exists()
    assert not upstream_provider.finetune_jobs.exists()


def test_too_few_examples_for_openai_is_explained(editor_client, team, editor, upstream, upstream_provider):
    small = stored_file(team, editor, chat_lines(3))
    response = create_job(editor_client, upstream, upstream_provider, small)
    assert response.status_code == 200
    assert "at least 10 training examples" in response.content.decode()


def test_cancel_upstream_job(editor_client, team, editor, upstream, upstream_provider):
    create_job(editor_client, upstream, upstream_provider, stored_file(team, editor))
    job = FineTuneJob.objects.get(team=team)
    upstream.script("POST /v1/fine_tuning/jobs/ftjob-abc/cancel", Reply(json={**JOB, "status": "cancelled"}))
    editor_client.post(reverse("finetunes:job_cancel", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.finished_at
    assert upstream.requests_to("/v1/fine_tuning/jobs/ftjob-abc/cancel")


def test_unreachable_upstream_is_a_warning_not_a_failure(editor_client, team, editor, upstream, upstream_provider):
    create_job(editor_client, upstream, upstream_provider, stored_file(team, editor))
    upstream.script("GET /v1/fine_tuning/jobs/ftjob-abc", *[Reply.error(503, "overloaded")] * 4)
    worker.tick(upstream_every=0)
    job = FineTuneJob.objects.get(team=team)
    assert job.status == JobStatus.VALIDATING
    assert job.events.filter(level="warn", message__contains="Could not reach").exists()


def test_server_restart_fails_a_running_local_job(team, editor, tmp_path):
    training = stored_file(team, editor, model="SmolLM2-135M-Instruct")
    from apps.finetunes.models import JobCheckpoint
    from django.utils import timezone

    job = FineTuneJob.objects.create(team=team, local=True, base_model="SmolLM2-135M-Instruct", training_file=training,
                                     status=JobStatus.RUNNING, worker="some-host-that-is-this-one:1")
    import socket

    job.worker = f"{socket.gethostname()}:999999"  # a pid that does not exist
    job.save()
    JobCheckpoint.objects.create(job=job, step=2, path=str(tmp_path), created_at=timezone.now())
    assert services.jobs_recover() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.error_code == "interrupted"
    assert "restarted" in job.error and "1 checkpoint saved until then is kept" in job.error
    assert job.checkpoints.count() == 1


def test_queued_local_job_cancels_at_once(editor_client, team, editor):
    training = stored_file(team, editor, model="SmolLM2-135M-Instruct")
    job = FineTuneJob.objects.create(team=team, local=True, base_model="SmolLM2-135M-Instruct", training_file=training)
    editor_client.post(reverse("finetunes:job_cancel", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED


def test_job_list_and_new_page_render(editor_client, team, editor):
    stored_file(team, editor)
    assert "No fine-tuning jobs yet" in editor_client.get(reverse("finetunes:index")).content.decode()
    page = editor_client.get(reverse("finetunes:job_new")).content.decode()
    assert "SmolLM2-135M-Instruct" in page and "train.jsonl" in page


def test_preference_file_creates_a_dpo_job(editor_client, team, editor, upstream, upstream_provider):
    import json as _json

    row = {"input": {"messages": [{"role": "user", "content": "Capital of France?"}]},
           "preferred_output": [{"role": "assistant", "content": "Paris."}],
           "non_preferred_output": [{"role": "assistant", "content": "London."}]}
    training = stored_file(team, editor, (_json.dumps(row) + "\n").encode() * 10, name="prefs.jsonl")
    assert training.format == "preference"
    create_job(editor_client, upstream, upstream_provider, training, n_epochs=2)
    body = upstream.requests_to("/v1/fine_tuning/jobs")[0].json
    assert body["method"] == {"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 2}}}
    assert FineTuneJob.objects.get(team=team).method == "dpo"


def test_pages_say_how_to_enable_local_tuning_without_torch(editor_client, team, editor, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    page = editor_client.get(reverse("finetunes:index")).content.decode()
    assert "Local fine-tuning is not enabled" in page and "make finetune-deps" in page
    training = stored_file(team, editor, model="SmolLM2-135M-Instruct")
    local = editor_client.get(reverse("finetunes:job_new")).content.decode()
    assert "needs make finetune-deps" in local
    from apps.proxy.services import provider_ensure_local

    response = editor_client.post(reverse("finetunes:job_new"), {"model_key": f"{provider_ensure_local(team=team).pk}:SmolLM2-135M-Instruct",
                                                                 "training_file": training.pk})
    assert response.status_code == 200 and "Local fine-tuning needs torch" in response.content.decode()
    assert not FineTuneJob.objects.exists()


def test_job_of_a_removed_provider_is_not_left_running(editor_client, team, editor, upstream, upstream_provider):
    create_job(editor_client, upstream, upstream_provider, stored_file(team, editor))
    upstream_provider.delete()
    worker.tick(upstream_every=0)
    job = FineTuneJob.objects.get(team=team)
    assert job.status == JobStatus.FAILED and "was removed" in job.error
