"""The runs history in chromium: a completion run from its page shows in the history; filter,
open it, replay it; the usage chart. Screenshots go to test-artifacts/<test>/."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.proxy.models import Run
from tests.upstream import Reply, completion_chunks

pytestmark = pytest.mark.django_db(transaction=True)


def seed_history(team, owner, editor):
    """A few days of varied runs, as a team would have them."""
    now = timezone.now()
    samples = [
        ("chat", "gpt-4o-mini", "succeeded", "page", {"messages": [{"role": "user", "content": "Summarise the release notes for 2.3 in three bullets"}]}, "- Faster streaming\n- Saved prompts\n- Usage page", 812, 64, "0.000160"),
        ("chat", "gpt-4o", "failed", "v1", {"messages": [{"role": "user", "content": "Translate the onboarding email into German"}]}, "", 420, 0, None),
        ("embeddings", "text-embedding-3-small", "succeeded", "v1", {"input": ["refund policy", "shipping times", "warranty"]}, "", 12, 0, "0.000000"),
        ("chat", "smollm2-135m-instruct", "cancelled", "page", {"messages": [{"role": "user", "content": "Write a haiku about the sea"}]}, "Waves fold into foam", 14, 6, None),
        ("completion", "gemma-3-270m", "succeeded", "page", {"prompt": "The three primary colours are"}, " red, yellow and blue.", 6, 8, None),
    ]
    for day in range(6):
        for i, (cap, model, status, source, data, out, pin, pout, cost) in enumerate(samples):
            if (day + i) % 3 == 0 and day:
                continue
            run = Run.objects.create(team=team, user=owner if i % 2 == 0 else editor, capability=cap, model=model, status=status,
                                     source=source, input=data, output_text=out, prompt_tokens=pin * (day + 1), completion_tokens=pout * (day + 1),
                                     total_tokens=(pin + pout) * (day + 1), cost=Decimal(cost) * (day + 1) if cost else None,
                                     ttft_ms=180 + 40 * i, total_ms=900 + 310 * i, provider_name="OpenAI" if "gpt" in model or "embedding" in model else "Local engine",
                                     error="Upstream said 429: rate limited; retry in 20 s." if status == "failed" else "")
            Run.objects.filter(pk=run.pk).update(created_at=now - dt.timedelta(days=day, minutes=17 * i))


def test_a_completion_run_in_the_history_filter_open_and_replay(page, login, owner, editor, team, upstream, upstream_provider, shot):
    seed_history(team, owner, editor)
    upstream.script("POST /v1/completions", Reply.stream(completion_chunks([" wrote", " it", " down."])))
    login(page, owner)
    page.goto("/completions/")
    expect(page.locator("[data-ws-state]")).to_have_text("live")
    page.select_option("[data-model-picker]", f"{upstream_provider.pk}:gpt-3.5-turbo-instruct")
    page.fill("#cmp-prompt", "She took the letter and")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".cmp-result.done .cmp-out")).to_have_text(" wrote it down.")
    run = Run.objects.get(model="gpt-3.5-turbo-instruct")

    page.click("nav >> text=Runs")
    expect(page.locator(".run-row").first).to_contain_text("She took the letter and")
    shot(page, "1-history")
    page.select_option("#f-capability", "completion")
    page.wait_for_url("**capability=completion**")
    rows = page.locator(".run-row")
    expect(rows.first).to_contain_text("gpt-3.5-turbo-instruct")
    assert all("Completion" in t for t in rows.locator("td.model-cell").all_inner_texts())
    page.select_option("#f-user", str(owner.pk))
    page.wait_for_url("**user=**")
    shot(page, "2-filtered")
    rows.first.locator("td.preview").first.click()
    page.wait_for_url(f"**/runs/{run.pk}/")
    expect(page.locator(".run-doc")).to_have_text("She took the letter and")
    expect(page.locator(".run-output")).to_have_text(" wrote it down.")
    expect(page.locator(".run-numbers")).to_contain_text("Time to first token")
    shot(page, "3-run")
    page.evaluate("document.documentElement.dataset.theme = 'dark'")
    shot(page, "3-run-dark")
    page.evaluate("document.documentElement.dataset.theme = 'light'")
    page.click("text=Replay in Completions")
    page.wait_for_url(f"**/completions/?run={run.pk}")
    expect(page.locator("#cmp-prompt")).to_have_value("She took the letter and")
    expect(page.locator(".cmp-result .cmp-out")).to_have_text(" wrote it down.")
    expect(page.locator("[data-model-picker]")).to_have_value(f"{upstream_provider.pk}:gpt-3.5-turbo-instruct")
    shot(page, "4-replay")
    assert not page.js_errors


def test_usage_chart_by_day_user_and_model(page, login, owner, editor, team, shot):
    seed_history(team, owner, editor)
    login(page, owner)
    page.goto("/runs/usage/?from=" + (timezone.localdate() - dt.timedelta(days=13)).isoformat())
    bars = page.locator(".usage-chart .bar")
    expect(bars).to_have_count(14)
    assert page.locator(".usage-chart .seg-in").count() >= 6
    expect(page.locator(".usage-table").first).to_contain_text("edgar")
    shot(page, "1-tokens")
    page.click(".seg-link:has-text('Cost')")
    expect(page.locator(".chart-card h2")).to_have_text("Cost (USD) per day")
    assert page.locator(".usage-chart .seg-cost").count() >= 5
    shot(page, "2-cost")
    page.evaluate("document.documentElement.dataset.theme = 'dark'")
    shot(page, "3-cost-dark")
    page.click(".usage-table >> text=gpt-4o-mini")
    page.wait_for_url("**model=gpt-4o-mini**")
    expect(page.locator(".run-row").first).to_contain_text("gpt-4o-mini")
    assert not page.js_errors


def test_a_chat_run_replays_in_chat(page, login, owner, team, upstream_provider, shot):
    run = Run.objects.create(team=team, user=owner, capability="chat", provider=upstream_provider, provider_name="Test upstream",
                             model="gpt-4o-mini", status="succeeded", params={"temperature": 0.2},
                             input={"messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Name a prime"}]},
                             output_text="7", prompt_tokens=12, completion_tokens=1)
    login(page, owner)
    page.goto(f"/runs/{run.pk}/")
    expect(page.locator(".run-msg-user")).to_contain_text("Name a prime")
    page.click("text=Replay in Chat")
    page.wait_for_url(f"**/chat/?run={run.pk}")
    expect(page.locator("[name=system]")).to_have_value("Be terse.")
    expect(page.locator(".msg-user textarea").first).to_have_value("Name a prime")
    shot(page, "1-chat-replay")
    assert not page.js_errors
