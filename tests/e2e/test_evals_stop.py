"""Stop in chromium: an evaluation against the test upstream is stopped while row 2 streams;
row 1 stays finished, row 2 keeps the words received, rows 3-4 are not run."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.evals.importing import Parsed
from apps.evals.models import Evaluation, Result
from apps.evals.services import rows_import, suite_create
from apps.prompts.services import prompt_version_create
from tests.upstream import Reply, chat_chunks

pytestmark = pytest.mark.django_db(transaction=True)


def test_stop_keeps_finished_and_partial_cells(page, login, owner, team, upstream, upstream_provider, shot, settings):
    team.providers.filter(kind="local").update(enabled=False)
    upstream.script("POST /v1/chat/completions", Reply.stream(chat_chunks(["Paris"])),
                    Reply.stream(chat_chunks(["Rome", *[f" word{i}" for i in range(200)]]), delay=0.05))
    version = prompt_version_create(team=team, user=owner, name="Capitals", messages=[{"role": "user", "content": "Capital of {{country}}"}],
                                    provider=upstream_provider, model="gpt-4o-mini")
    suite = suite_create(team=team, user=owner, name="Four countries", prompt_version=version)
    rows_import(suite=suite, parsed=Parsed(["country"], [{"country": c} for c in ("France", "Italy", "Spain", "Chile")]))
    login(page, owner)
    page.goto(f"/evals/suites/{suite.pk}/")
    page.select_option("#concurrency", "1")
    page.keyboard.press("Control+Enter")  # the run form is the page's data-run-scope
    running = page.locator("#grid .ev-running .ev-output")
    expect(running).to_contain_text("word", timeout=20_000)
    shot(page, "1-streaming")
    page.click("[data-stop-button]")
    expect(page.locator("#results")).to_have_attribute("data-status", "cancelled")
    expect(page.locator("#ev-status")).to_have_text("Stopped")
    shot(page, "2-stopped")
    cells = page.locator("#grid tbody tr")
    expect(cells.nth(0)).to_contain_text("Paris")
    expect(cells.nth(1)).to_contain_text(re.compile(r"Rome word\d"))
    expect(cells.nth(1)).to_contain_text("Stopped while this row was running")
    expect(cells.nth(2)).to_contain_text("not run")
    expect(cells.nth(3)).to_contain_text("Chile")
    expect(page.locator("[data-download]")).to_be_visible()
    page.emulate_media(color_scheme="dark")
    shot(page, "3-stopped-dark")
    evaluation = Evaluation.objects.get()
    assert evaluation.status == "cancelled"
    statuses = list(Result.objects.filter(evaluation=evaluation).order_by("row_number").values_list("status", flat=True))
    assert statuses == ["succeeded", "cancelled"]
    assert not page.js_errors
