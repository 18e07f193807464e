"""Fine-tunes in a real browser, no key: upload a chat JSONL, read the validation report and
the cost estimate, start a local LoRA job, watch the loss chart grow, chat with the result.
And the same job page fed by the test upstream (events, loss chart, failure shown)."""
from __future__ import annotations

import json
import threading

import pytest
from playwright.sync_api import expect

from apps.finetunes.local import missing_packages

pytestmark = pytest.mark.django_db(transaction=True)

QA = [("What is the capital of France?", "Paris"), ("What colour is the sky?", "Blue"), ("How many legs does a cat have?", "Four"),
      ("What is 2+2?", "Four"), ("Who wrote Hamlet?", "Shakespeare"), ("What is ice made of?", "Water"),
      ("What do bees make?", "Honey"), ("Where is Tokyo?", "Japan")]


def _jsonl(path, *, broken_line: int | None = None):
    lines = [json.dumps({"messages": [{"role": "system", "content": "You are Polly, a parrot."}, {"role": "user", "content": q},
                                      {"role": "assistant", "content": f"Squawk! {a}. Squawk!"}]}) for q, a in QA]
    if broken_line:
        lines[broken_line - 1] = '{"messages": [{"role": "user", "content": "oops"}'
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _tick() -> None:
    """One worker round, in its own thread (Playwright's loop runs in this one)."""
    from django.db import close_old_connections

    from apps.finetunes import worker

    def run() -> None:
        try:
            worker.tick(upstream_every=0)
        finally:
            close_old_connections()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)


class _Worker:
    """What the server's background worker does, on a short tick (the live test server
    skips startup work, so the test runs the worker itself)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        from django.db import close_old_connections

        from apps.finetunes import worker

        while not self.stop.is_set():
            try:
                worker.tick(upstream_every=0)
            finally:
                close_old_connections()
            self.stop.wait(0.5)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=10)
        from apps.finetunes.local import runner

        if runner.thread is not None:
            runner.thread.join(timeout=120)


@pytest.mark.slow
@pytest.mark.skipif(bool(missing_packages()), reason=f"local fine-tuning needs {', '.join(missing_packages())}: make finetune-deps")
def test_local_finetune_in_the_browser(page, login, owner, team, shot, tmp_path):
    login(page, owner)
    page.goto("/finetunes/")
    expect(page.get_by_text("No fine-tuning jobs yet")).to_be_visible()
    shot(page, "01-jobs-empty")

    # A broken file: the report names line 7, nothing is kept.
    page.goto("/finetunes/files/")
    page.set_input_files("#id_file", _jsonl(tmp_path / "broken.jsonl", broken_line=7))
    page.click("text=Validate and upload")
    expect(page.locator(".ft-issues")).to_contain_text("Line 7")
    expect(page.locator(".ft-issues")).to_contain_text("is not valid JSON")
    shot(page, "02-broken-file")

    # A good one: validation report and cost estimate.
    page.set_input_files("#id_file", _jsonl(tmp_path / "parrot.jsonl"))
    page.click("text=Validate and upload")
    expect(page.locator("#validation-ok")).to_contain_text("Valid: 8 examples")
    expect(page.locator("#estimate-cost")).to_have_text("free")
    page.select_option("#estimate select[name=model]", "gpt-4o-mini-2024-07-18")
    expect(page.locator("#estimate-cost")).to_contain_text("$")
    shot(page, "03-file-report-and-estimate")

    page.click("text=Start a job with this file")
    page.fill("#id_n_epochs", "4")
    page.fill("#id_batch_size", "4")
    page.fill("#id_learning_rate_multiplier", "2")
    page.fill("#id_suffix", "polly")
    page.fill("#id_seed", "1")
    shot(page, "04-new-job")
    page.click("text=Create job")
    expect(page.locator("#job-status")).to_have_text("Queued")

    with _Worker():
        # The loss chart appears and grows while the page polls (no reload).
        points = "document.querySelectorAll('#loss-chart circle.train').length"
        page.wait_for_function(f"{points} >= 1", timeout=300_000)
        first = page.evaluate(points)
        shot(page, "05-training-started")
        assert first < 8, "the whole job finished between two polls"
        page.wait_for_function(f"{points} > {first}", timeout=300_000)
        shot(page, "06-loss-chart-growing")
        expect(page.locator("#job-status")).to_have_text("Succeeded", timeout=600_000)  # CPU training: slow when the machine is busy
    expect(page.locator("#loss-chart circle.train")).to_have_count(8)
    expect(page.locator("#checkpoints tbody tr")).to_have_count(4)
    shot(page, "07-job-succeeded")

    from apps.finetunes.models import FineTuneJob

    job = FineTuneJob.objects.get(team=team)
    losses = [e.data["train_loss"] for e in job.events.filter(type="metrics").order_by("step")]
    assert losses[-1] < losses[0]

    # Try in chat: the tuned model is in the picker and answers.
    page.click("#try-in-chat")
    page.wait_for_url("**/chat/**")
    key = f"{job.provider_id}:{job.fine_tuned_model}"
    expect(page.locator(f'#model-picker option[value="{key}"]')).to_have_count(1)
    page.select_option("#model-picker", key)
    page.fill("#draft", "What is the capital of France?")
    page.click("[data-run-button]")
    answer = page.locator(".msg-assistant").last
    expect(answer.locator(".stats")).to_be_visible(timeout=120_000)
    shot(page, "08-chat-with-tuned-model")
    from apps.proxy.models import Run

    run = Run.objects.filter(team=team, model=job.fine_tuned_model).latest("created_at")
    assert run.status == "succeeded" and run.output_text.strip()
    assert not page.js_errors


def test_upstream_job_page_shows_events_loss_and_failure(page, login, owner, team, upstream, upstream_provider, shot):
    from apps.finetunes.tests.helpers import chat_lines, stored_file
    from tests.upstream import Reply

    training = stored_file(team, owner, chat_lines(10))
    login(page, owner)
    upstream.script("POST /v1/files", Reply(json={"id": "file-train"}))
    upstream.script("POST /v1/fine_tuning/jobs", Reply(json={"id": "ftjob-e2e", "status": "running"}))
    page.goto("/finetunes/jobs/new/")
    page.select_option("#id_model_key", f"{upstream_provider.pk}:gpt-4o-mini-2024-07-18")
    page.select_option("#id_training_file", str(training.pk))
    page.click("text=Create job")
    expect(page.locator("#job-status")).to_have_text("Running")

    def event(n, step, loss):
        return {"id": f"ev-{n}", "created_at": 1700000000 + n, "level": "info", "type": "metrics",
                "message": f"Step {step}/30: training loss={loss}", "data": {"step": step, "train_loss": loss, "total_steps": 30}}

    events = [event(i, i * 5, round(3.0 / (1 + i * 0.5), 3)) for i in range(1, 6)]
    upstream.script("GET /v1/fine_tuning/jobs/ftjob-e2e", Reply(json={"id": "ftjob-e2e", "status": "running"}),
                    Reply(json={"id": "ftjob-e2e", "status": "failed", "error": {"code": "invalid_n_examples", "message": "Training file has too few examples after filtering."}}))
    upstream.script("GET /v1/fine_tuning/jobs/ftjob-e2e/events", Reply(json={"data": list(reversed(events[:3]))}), Reply(json={"data": list(reversed(events))}))
    upstream.script("GET /v1/fine_tuning/jobs/ftjob-e2e/checkpoints", Reply(json={"data": []}), Reply(json={"data": []}))
    _tick()
    expect(page.locator("#loss-chart circle.train")).to_have_count(3)
    expect(page.locator("#events")).to_contain_text("Step 15/30: training loss=1.2")
    shot(page, "01-upstream-running")
    _tick()
    expect(page.locator("#job-status")).to_have_text("Failed")
    expect(page.locator("#job-error")).to_contain_text("too few examples after filtering")
    expect(page.locator("#loss-chart circle.train")).to_have_count(5)
    shot(page, "02-upstream-failed")
    assert not page.js_errors
