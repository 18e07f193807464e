"""Evaluations against the test upstream (a real HTTP server on loopback): every cell is a
Run through the proxy; a missing value, an upstream error or Stop affect only their cells."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from apps.evals.models import Evaluation, EvaluationStatus, Result, Variant
from apps.evals.services import VariantSpec, evaluation_start, evaluation_stop, evaluations_mark_interrupted
from apps.evals.tests.conftest import wait_finished, wait_for
from apps.proxy.models import Run, RunSource
from tests.upstream import Reply, chat_chunks

pytestmark = pytest.mark.django_db(transaction=True)
CHAT = "POST /v1/chat/completions"
CITIES = [{"city": "France", "expected": "Paris"}, {"city": "Italy", "expected": "Rome"}, {"city": "Spain", "expected": "Madrid"}]


def start(team, owner, suite, *specs, concurrency=2):
    return evaluation_start(team=team, user=owner, suite=suite, variants=list(specs), concurrency=concurrency)


def spec(version, provider, model="gpt-4o-mini", **params):
    return VariantSpec(version=version, provider=provider, model=model, params=params)


def answer(text, usage=(12, 3)):
    return Reply.stream(chat_chunks([text], usage={"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}))


def test_every_row_is_a_recorded_run_with_numbers_and_checks(team, owner, only_upstream, city_version, make_suite, upstream):
    upstream.script(CHAT, answer("Paris"), answer("Rome"), answer("Barcelona"))
    suite = make_suite(CITIES, columns=("city", "expected"), checks=[{"kind": "contains", "column": "expected"}, {"kind": "regex", "value": "^[A-Z]"}])
    evaluation = wait_finished(start(team, owner, suite, spec(city_version, only_upstream), concurrency=1).pk)
    assert evaluation.status == EvaluationStatus.SUCCEEDED and evaluation.done == 3 and evaluation.total == 3
    sent = [r.json for r in upstream.requests_to("/v1/chat/completions")]
    assert [m["messages"][1]["content"] for m in sent] == ["Capital of France", "Capital of Italy", "Capital of Spain"]
    assert all(m["temperature"] == 0 and m["model"] == "gpt-4o-mini" for m in sent)
    runs = Run.objects.filter(group=evaluation.group).order_by("id")
    assert runs.count() == 3
    assert all(r.prompt_version_id == city_version.pk and r.source == RunSource.EVAL and r.status == "succeeded" for r in runs)
    results = list(Result.objects.filter(evaluation=evaluation).order_by("row_number"))
    assert [r.output for r in results] == ["Paris", "Rome", "Barcelona"]
    assert [r.passed for r in results] == [True, True, False]
    assert results[2].checks[0] == {"passed": False, "detail": "not found “Madrid”"}
    for result in results:
        run = Run.objects.get(pk=result.run_id)
        assert (result.prompt_tokens, result.completion_tokens, result.cost, result.total_ms) == (12, 3, run.cost, run.total_ms)
        assert run.cost is not None and run.cost > 0  # gpt-4o-mini has a catalog price
    variant = Variant.objects.get(evaluation=evaluation)
    assert (variant.done, variant.succeeded, variant.failed, variant.passed) == (3, 3, 0, 2)
    assert variant.check_passes == [2, 3]
    assert variant.prompt_tokens == 36 and variant.completion_tokens == 9
    assert variant.cost == sum((r.cost for r in results), Decimal(0))
    assert variant.mean_ms == pytest.approx(sum(r.total_ms for r in results) / 3)


def test_a_row_without_a_value_is_that_cells_error(team, owner, only_upstream, city_version, make_suite, upstream):
    suite = make_suite([{"city": "France"}, {"town": "Rome"}, {"city": "Spain"}], columns=("city",))
    evaluation = wait_finished(start(team, owner, suite, spec(city_version, only_upstream)).pk)
    assert evaluation.status == EvaluationStatus.SUCCEEDED
    results = {r.row_number: r for r in Result.objects.filter(evaluation=evaluation)}
    assert results[2].status == "error" and results[2].run_id is None
    assert results[2].error.startswith("row 2: no value for 'city'")
    assert results[1].status == results[3].status == "succeeded"
    assert len(upstream.requests_to("/v1/chat/completions")) == 2


def test_an_upstream_error_fails_one_cell_and_the_rest_go_on(team, owner, only_upstream, city_version, make_suite, upstream):
    upstream.script(CHAT, Reply.error(400, "This model's maximum context length was exceeded.", code="context_length_exceeded"))
    suite = make_suite(CITIES, columns=("city", "expected"), checks=[{"kind": "contains", "column": "expected"}])
    evaluation = wait_finished(start(team, owner, suite, spec(city_version, only_upstream), concurrency=1).pk)
    assert evaluation.status == EvaluationStatus.SUCCEEDED
    results = list(Result.objects.filter(evaluation=evaluation).order_by("row_number"))
    assert results[0].status == "failed" and "maximum context length" in results[0].error and results[0].passed is False
    assert Run.objects.get(pk=results[0].run_id).status == "failed"
    assert [r.status for r in results[1:]] == ["succeeded", "succeeded"]
    variant = Variant.objects.get(evaluation=evaluation)
    assert (variant.failed, variant.succeeded) == (1, 2)


def test_stop_keeps_finished_cells_and_the_partial_output_in_flight(team, owner, owner_client, only_upstream, city_version, make_suite, upstream, settings):
    settings.RUN_CHECKPOINT_SECONDS = 0.05  # the Run shows its output so far, so the test can see streaming started
    slow = Reply.stream(chat_chunks(["Slow", *[f" word{i}" for i in range(100)]]), delay=0.1)
    upstream.script(CHAT, answer("Paris"), answer("Rome"), slow)
    rows = [{"city": f"Country {i}"} for i in range(6)]
    suite = make_suite(rows, columns=("city",))
    evaluation = start(team, owner, suite, spec(city_version, only_upstream), concurrency=1)
    wait_for(lambda: Run.objects.filter(group=evaluation.group, status="running", output_text__startswith="Slow word").exists(),
             what="the third row to stream")
    # While it runs, the polled grid shows the text streaming in row 3 and the values of rows to come.
    live = owner_client.get(reverse("evals:evaluation_results", args=[evaluation.pk])).content.decode()
    assert 'hx-trigger="every 1s"' in live and "generating…" in live
    streaming = live.split('class="ev-out ev-pending ev-running"')[1]
    assert streaming.split("</td>")[0].count("Slow word") == 1
    assert "Country 5" in live and "queued" in live
    response = owner_client.post(reverse("evals:evaluation_stop", args=[evaluation.pk]))
    assert response.status_code == 302
    evaluation = wait_finished(evaluation.pk)
    assert evaluation.status == EvaluationStatus.CANCELLED
    assert "Stopped after 3 of 6 cells" in evaluation.error
    results = list(Result.objects.filter(evaluation=evaluation).order_by("row_number"))
    assert [r.status for r in results] == ["succeeded", "succeeded", "cancelled"]
    assert [r.output for r in results[:2]] == ["Paris", "Rome"]
    partial = results[2]
    assert partial.output.startswith("Slow word") and "word99" not in partial.output
    run = Run.objects.get(pk=partial.run_id)
    assert run.status == "cancelled" and run.output_text == partial.output
    assert upstream.wait_for_disconnect()  # the upstream request was closed
    assert len(upstream.requests_to("/v1/chat/completions")) == 3  # rows 4-6 never sent


def test_compare_two_versions_on_the_same_rows(team, owner, only_upstream, city_version, make_suite, upstream):
    from apps.prompts.services import prompt_version_create

    v2 = prompt_version_create(team=team, user=owner, prompt=city_version.prompt,
                               messages=[{"role": "user", "content": "Which city is the capital of {{city}}?"}],
                               provider=only_upstream, model="gpt-4o-mini")
    suite = make_suite(CITIES[:2], columns=("city", "expected"), checks=[{"kind": "contains", "value": "capital"}])
    evaluation = wait_finished(start(team, owner, suite, spec(city_version, only_upstream), spec(v2, only_upstream, "gpt-4o")).pk)
    variants = list(Variant.objects.filter(evaluation=evaluation).order_by("position"))
    assert [v.label for v in variants] == ["Capitals v1 · gpt-4o-mini", "Capitals v2 · gpt-4o"]
    assert evaluation.total == 4 and Result.objects.filter(evaluation=evaluation).count() == 4
    # The test upstream echoes the last user message, so both versions' answers contain "capital".
    assert [(v.done, v.passed) for v in variants] == [(2, 2), (2, 2)]
    outputs = dict(Result.objects.filter(evaluation=evaluation, row_number=1).values_list("variant__position", "output"))
    assert outputs == {0: "Echo: Capital of France", 1: "Echo: Which city is the capital of France?"}
    models = sorted(Run.objects.filter(group=evaluation.group).values_list("model", "prompt_version_id"))
    assert models == sorted([("gpt-4o-mini", city_version.pk)] * 2 + [("gpt-4o", v2.pk)] * 2)


def test_the_page_shows_totals_and_the_grid(team, owner, owner_client, only_upstream, city_version, make_suite, upstream):
    upstream.script(CHAT, answer("Paris"), answer("Rome"))
    suite = make_suite(CITIES[:2], columns=("city", "expected"), checks=[{"kind": "contains", "column": "expected"}])
    response = owner_client.post(reverse("evals:suite_run", args=[suite.pk]), {
        "version_0": city_version.pk, "model_key_0": f"{only_upstream.pk}:gpt-4o-mini", "max_tokens_0": "20", "concurrency": "1",
    })
    assert response.status_code == 302
    evaluation = wait_finished(Evaluation.objects.get().pk)
    assert Variant.objects.get().params == {"max_tokens": 20}
    html = owner_client.get(response["Location"]).content.decode()
    assert "2<span class=\"muted\">/2</span>" in html and "passed (100%)" in html
    assert html.count('data-cell') == 2 and "12→3 tok" in html and "✓ contains column expected" in html
    assert "mean latency" in html and "total cost" in html
    partial = owner_client.get(reverse("evals:evaluation_results", args=[evaluation.pk])).content.decode().strip()
    assert partial.startswith('<div id="results"') and "hx-trigger" not in partial.split(">")[0]  # finished: no more polling


def test_bad_run_form_input_is_explained(team, owner, owner_client, only_upstream, city_version, make_suite):
    suite = make_suite(CITIES[:1], columns=("city", "expected"))
    response = owner_client.post(reverse("evals:suite_run", args=[suite.pk]), {
        "version_0": city_version.pk, "model_key_0": f"{only_upstream.pk}:gpt-4o-mini", "temperature_0": "5"})
    assert response.status_code == 400 and "temperature must be between 0 and 2" in response.content.decode()
    assert not Evaluation.objects.exists()


def test_viewer_cannot_create_or_run_and_other_teams_get_404(team, owner, viewer_client, outsider_client, only_upstream, city_version, make_suite):
    suite = make_suite(CITIES[:1], columns=("city", "expected"))
    run = {"version_0": city_version.pk, "model_key_0": f"{only_upstream.pk}:gpt-4o-mini"}
    assert viewer_client.post(reverse("evals:suite_run", args=[suite.pk]), run).status_code == 403
    assert viewer_client.post(reverse("evals:index"), {"name": "x"}).status_code == 403
    assert viewer_client.get(reverse("evals:suite", args=[suite.pk])).status_code == 200
    assert outsider_client.get(reverse("evals:suite", args=[suite.pk])).status_code == 404
    assert outsider_client.post(reverse("evals:suite_run", args=[suite.pk]), run).status_code == 404
    assert not Evaluation.objects.exists()


def test_an_evaluation_left_running_by_a_dead_process_is_interrupted_at_startup(team, owner, make_suite):
    suite = make_suite(CITIES[:1], columns=("city", "expected"))
    dead = Evaluation.objects.create(team=team, suite=suite, status="running", worker="no-such-host-check:1", row_count=1, total=1)
    import socket

    here_dead = Evaluation.objects.create(team=team, suite=suite, status="running", worker=f"{socket.gethostname()}:999999", row_count=1, total=1)
    assert evaluations_mark_interrupted() == 1
    here_dead.refresh_from_db()
    dead.refresh_from_db()
    assert here_dead.status == "interrupted" and "cells finished until then are kept" in here_dead.error
    assert dead.status == "running"  # another host's process: not ours to judge


def test_failing_filter_download_and_best_variant(team, owner, owner_client, only_upstream, city_version, make_suite, upstream):
    import csv
    import io
    import json

    upstream.script(CHAT, answer("Paris"), answer("Rome"), answer("Barcelona"))
    suite = make_suite(CITIES, columns=("city", "expected"), checks=[{"kind": "contains", "column": "expected"}])
    evaluation = wait_finished(start(team, owner, suite, spec(city_version, only_upstream), concurrency=1).pk)
    page = owner_client.get(reverse("evals:evaluation", args=[evaluation.pk]), {"failing": "1"}).content.decode()
    assert page.count('data-row="') == 1 and 'data-row="3"' in page and "Barcelona" in page and "Paris" not in page.split('id="grid"')[1]
    response = owner_client.get(reverse("evals:evaluation_download", args=[evaluation.pk]), {"format": "csv"})
    assert response["Content-Disposition"] == f'attachment; filename="evaluation-{evaluation.pk}.csv"'
    lines = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["row"], r["var:city"], r["output"], r["passed"], r["check:contains column expected"]) for r in lines] == [
        ("1", "France", "Paris", "True", "True"), ("2", "Italy", "Rome", "True", "True"), ("3", "Spain", "Barcelona", "False", "False")]
    assert lines[0]["prompt_tokens"] == "12" and lines[0]["run_id"]
    response = owner_client.get(reverse("evals:evaluation_download", args=[evaluation.pk]), {"format": "jsonl"})
    records = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert len(records) == 3 and records[2]["output"] == "Barcelona" and records[2]["passed"] is False

    # Compare: the variant that passed more rows is marked.
    upstream.script(CHAT, answer("Paris"), answer("Paris"), answer("Rome"), answer("Nope"), answer("Madrid"), answer("Nope"))
    compare = wait_finished(start(team, owner, suite, spec(city_version, only_upstream), spec(city_version, only_upstream, "gpt-4o"),
                                  concurrency=1).pk)
    page = owner_client.get(reverse("evals:evaluation", args=[compare.pk])).content.decode()
    passed = list(Variant.objects.filter(evaluation=compare).order_by("position").values_list("passed", flat=True))
    assert passed == [3, 1]
    assert page.count("data-best") == 1 and 'gpt-4o-mini <span class="badge badge-ok" data-best>' in page


def test_a_suite_without_rows_cannot_run(team, owner, owner_client, only_upstream, city_version):
    from apps.evals.services import suite_create

    suite = suite_create(team=team, user=owner, name="Empty", prompt_version=city_version)
    assert suite.columns == ["city"]
    response = owner_client.post(reverse("evals:suite_run", args=[suite.pk]), {
        "version_0": city_version.pk, "model_key_0": f"{only_upstream.pk}:gpt-4o-mini"})
    assert response.status_code == 400 and "no rows yet" in response.content.decode()
    page = owner_client.get(reverse("evals:index"), {"version": city_version.pk}).content.decode()
    assert f'<option value="{city_version.pk}" selected>' in page


def test_rows_are_read_in_pages_in_the_suites_order(team, owner, only_upstream, city_version, make_suite, upstream, settings):
    settings.EVALS_ROW_PAGE = 3  # 8 rows: pages of 3, 3 and 2
    suite = make_suite([{"city": f"Country {i}"} for i in range(1, 9)], columns=("city",))
    suite.rows.filter(position=2).delete()  # a gap in the positions
    evaluation = wait_finished(start(team, owner, suite, spec(city_version, only_upstream), concurrency=3).pk)
    assert evaluation.row_count == 7 and evaluation.done == 7
    numbered = list(Result.objects.filter(evaluation=evaluation).order_by("row_number").values_list("row_number", "values__city", "output"))
    cities = ["Country 1", *[f"Country {i}" for i in range(3, 9)]]
    assert numbered == [(n, c, f"Echo: Capital of {c}") for n, c in zip(range(1, 8), cities)]


def test_rows_deleted_or_the_suite_deleted_while_running(team, owner, only_upstream, city_version, make_suite, upstream):
    from apps.evals.services import suite_delete

    slow = [Reply.stream(chat_chunks(["Slow", " answer"]), delay=0.3) for _ in range(6)]
    upstream.script(CHAT, *slow)
    suite = make_suite([{"city": f"Country {i}"} for i in range(6)], columns=("city",))
    evaluation = start(team, owner, suite, spec(city_version, only_upstream), concurrency=1)
    wait_for(lambda: Run.objects.filter(group=evaluation.group).exists(), what="the first call")
    suite.rows.filter(position=1).delete()  # the row being run right now
    evaluation = wait_finished(evaluation.pk)
    first = Result.objects.get(evaluation=evaluation, row_number=1)
    assert first.status == "succeeded" and first.row_id is None and first.values == {"city": "Country 0"}

    upstream.script(CHAT, *slow)
    again = start(team, owner, suite, spec(city_version, only_upstream), concurrency=1)
    wait_for(lambda: Run.objects.filter(group=again.group).exists(), what="the first call")
    suite_delete(suite=suite)
    wait_for(lambda: Run.objects.filter(group=again.group).exclude(status="running").count() == Run.objects.filter(group=again.group).count(),
             what="the calls in flight to end")
    from apps.evals import runner

    wait_for(lambda: not runner.is_running_here(again.pk), what="the runner to end")
    assert Run.objects.filter(group=again.group).count() < 5  # stopped, not run to the end
    assert not Evaluation.objects.filter(pk=again.pk).exists()
