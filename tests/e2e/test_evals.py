"""Evaluations in chromium against the local engine's real SmolLM2: create a suite from a
prompt version, paste 5 rows, edit a cell, add checks (a refused regex first), run with a
live progress bar, read per-row numbers and check results, then compare two versions.
Screenshots of each state go to test-artifacts/<test>/."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.evals.models import Evaluation, Result, TestRow
from apps.prompts.services import prompt_version_create
from apps.proxy.models import Provider, Run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROWS = "France\tParis\nItaly\tRome\nJapan\tTokyo\nEgypt\tCairo\nPeru\tLima"


def wait_done(page, timeout=240_000):
    expect(page.locator("#results")).to_have_attribute("data-status", re.compile("succeeded|cancelled|failed"), timeout=timeout)


def test_suite_run_and_compare_on_the_local_engine(page, login, owner, team, shot):
    local = Provider.objects.get(team=team, kind="local")
    v1 = prompt_version_create(team=team, user=owner, name="Capitals", messages=[
        {"role": "system", "content": "You answer with the name of a city only."},
        {"role": "user", "content": "What is the capital of {{country}}?"}], provider=local, model="smollm2-135m-instruct",
        params={"temperature": 0, "max_tokens": 12})
    v2 = prompt_version_create(team=team, user=owner, prompt=v1.prompt, messages=[
        {"role": "user", "content": "{{country}}'s capital city is called"}], provider=local, model="smollm2-135m-instruct",
        params={"temperature": 0, "max_tokens": 12}, commit_message="shorter")
    login(page, owner)

    # A suite from the version: its variable becomes the first column, plus an expected column.
    page.goto("/evals/")
    page.fill("#suite-name", "Capitals of the world")
    page.select_option("#suite-version", str(v1.pk))
    page.fill("#suite-columns", "expected")
    shot(page, "1-new-suite")
    page.click("#suite-create button")
    expect(page.locator("h1")).to_have_text("Capitals of the world")
    expect(page.locator("#rows-table thead")).to_contain_text("country")

    # Paste 5 rows copied from a spreadsheet, then fix one cell inline.
    page.fill("#pasted", ROWS)
    page.click("#import-form button")
    expect(page.locator(".flash")).to_contain_text("Added 5 rows")
    expect(page.locator("#rows-table tbody tr")).to_have_count(5)
    cell = page.get_by_label("expected of row 5")
    cell.fill("Lima, Peru")
    cell.press("Tab")
    expect(page.locator("#rows-table tbody tr").nth(4)).to_have_class(re.compile("ev-saved"))
    assert TestRow.objects.get(position=5).values == {"country": "Peru", "expected": "Lima, Peru"}

    # A bad regex is refused with the reason; a good one and a per-row "contains" are kept.
    page.select_option("#check-kind", "regex")
    page.fill("#check-value", "[A-Z")
    page.click("#check-form button")
    expect(page.locator("#check-error")).to_contain_text("regular expression is invalid")
    shot(page, "2-bad-regex-refused")
    page.select_option("#check-kind", "regex")
    page.fill("#check-value", "^[A-Z]")
    page.click("#check-form button")
    page.select_option("#check-kind", "contains")
    page.select_option("#check-column", "expected")
    page.fill("#check-value", "")
    page.click("#check-form button")
    expect(page.locator(".ev-check-item")).to_have_count(2)
    page.get_by_label("expected of row 5").fill("Lima")
    page.get_by_label("expected of row 5").press("Tab")
    expect(page.locator("#rows-table tbody tr").nth(4)).to_have_class(re.compile("ev-saved"))
    shot(page, "3-suite-ready")

    # Run v1 on SmolLM2 over the 5 rows, one at a time so the progress bar is seen moving.
    page.select_option("#version-0", str(v1.pk))
    page.select_option("#model-0", f"{local.pk}:smollm2-135m-instruct")
    page.select_option("#concurrency", "1")
    page.click("#run-form [data-run-button]")
    expect(page.locator("h1")).to_contain_text("Evaluation #")
    page.wait_for_function("() => document.querySelector('#results')?.dataset.status !== 'queued'")
    shot(page, "4-running")
    wait_done(page)
    shot(page, "5-finished")
    evaluation = Evaluation.objects.get()
    assert evaluation.status == "succeeded" and evaluation.done == 5
    expect(page.locator("#grid tbody tr")).to_have_count(5)
    cells = page.locator("#grid [data-cell]")
    expect(cells).to_have_count(5)
    for i in range(5):
        stats = cells.nth(i).locator(".ev-cell-stats")
        expect(stats).to_contain_text(re.compile(r"\d+→\d+ tok"))
        expect(stats).to_contain_text(re.compile(r"\d+ ms"))
        expect(cells.nth(i).locator(".ev-chk")).to_have_count(2)
    passed = Result.objects.filter(evaluation=evaluation, passed=True).count()
    expect(page.locator("[data-passed]")).to_contain_text(f"{passed}/5")
    assert Run.objects.filter(group=evaluation.group, prompt_version=v1, model="smollm2-135m-instruct").count() == 5
    # The first row's output is the model's real answer, shown as text.
    first = Result.objects.get(evaluation=evaluation, row_number=1)
    expect(cells.nth(0).locator(".ev-output")).to_have_text(first.output.strip() and re.compile(re.escape(first.output.strip()[:20])))

    # Compare the two versions on the same rows: one grid, a column and totals per version.
    page.click("text=Edit suite / run again")
    page.check("#compare-toggle")
    page.select_option("#version-0", str(v1.pk))
    page.select_option("#version-1", str(v2.pk))
    page.select_option("#model-1", f"{local.pk}:smollm2-135m-instruct")
    page.select_option("#concurrency", "2")
    shot(page, "6-compare-form")
    page.click("#run-form [data-run-button]")
    wait_done(page)
    compare = Evaluation.objects.latest("id")
    assert compare.status == "succeeded" and compare.total == 10 and compare.done == 10
    expect(page.locator(".ev-total")).to_have_count(2)
    expect(page.locator(".ev-total").nth(0)).to_contain_text("Capitals v1")
    expect(page.locator(".ev-total").nth(1)).to_contain_text("Capitals v2")
    expect(page.locator("#grid thead th")).to_have_count(4)
    expect(page.locator("#grid [data-cell]")).to_have_count(10)
    shot(page, "7-compare")
    assert not page.js_errors
