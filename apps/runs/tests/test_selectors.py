"""The runs history's reads: filters, keyset pages over 10k+ runs, usage totals, team scoping."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.http import Http404, QueryDict
from django.utils import timezone

from apps.prompts.services import prompt_version_create
from apps.proxy.models import Run
from apps.runs import selectors
from apps.runs.charts import usage_chart

pytestmark = pytest.mark.django_db


def make_run(team, user=None, **fields) -> Run:
    defaults = {"capability": "chat", "model": "gpt-4o-mini", "status": "succeeded", "input": {"messages": [{"role": "user", "content": "hi"}]}}
    return Run.objects.create(team=team, user=user, **{**defaults, **fields})


def at(run: Run, when: dt.datetime) -> Run:
    Run.objects.filter(pk=run.pk).update(created_at=when)
    run.refresh_from_db()
    return run


def filters(**params) -> selectors.RunFilters:
    query = QueryDict(mutable=True)
    query.update(params)
    return selectors.run_filters_parse(query)


def test_every_filter_narrows_the_list(team, owner, editor):
    version = prompt_version_create(team=team, user=owner, name="Greeter", messages=[{"role": "user", "content": "hi"}])
    a = make_run(team, owner, model="gpt-4o", prompt_version=version)
    b = make_run(team, editor, capability="completion", model="gemma-3-270m", input={"prompt": "Once"}, status="cancelled")
    c = make_run(team, None, capability="embeddings", model="e5", source="v1", status="failed", input={"input": ["x", "y"]})
    at(c, timezone.now() - dt.timedelta(days=3))

    def ids(**params):
        return [r.pk for r in selectors.runs_page(team=team, filters=filters(**params)).runs]

    assert ids() == [b.pk, a.pk, c.pk]
    assert ids(user=str(editor.pk)) == [b.pk]
    assert ids(prompt=str(version.prompt_id)) == [a.pk]
    assert ids(model="gemma-3-270m") == [b.pk]
    assert ids(capability="embeddings") == [c.pk]
    assert ids(source="v1") == [c.pk]
    assert ids(status="cancelled") == [b.pk]
    today = timezone.localdate()
    assert ids(**{"from": today.isoformat()}) == [b.pk, a.pk]
    assert ids(to=(today - dt.timedelta(days=1)).isoformat()) == [c.pk]
    assert ids(capability="no-such-thing") == [b.pk, a.pk, c.pk]  # unknown choices are ignored


def test_a_bad_date_is_reported_not_a_crash(team):
    f = filters(**{"from": "yesterday", "to": "2026-01-01"})
    assert f.errors == ["From “yesterday” is not a date: use YYYY-MM-DD."] and f.date_to == dt.date(2026, 1, 1)
    swapped = filters(**{"from": "2026-02-01", "to": "2026-01-01"})
    assert "swap From and To" in swapped.errors[0] and swapped.date_from < swapped.date_to


def test_keyset_pages_walk_10k_runs_without_gaps_or_repeats(team, owner, django_assert_max_num_queries):
    Run.objects.bulk_create([Run(team=team, user=owner, capability="chat", model=f"m{i % 3}", status="succeeded") for i in range(10_050)])
    newest = list(Run.objects.filter(team=team).order_by("-created_at", "-id").values_list("id", flat=True))
    seen, cursor, pages = [], "", 0
    while True:
        with django_assert_max_num_queries(2):  # the cursor's row, then the page: never a count or an offset scan
            page = selectors.runs_page(team=team, filters=filters(), cursor=cursor, limit=200)
        seen += [r.pk for r in page.runs]
        pages += 1
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == newest and pages == 51
    # Filtered pages keep the filter.
    page = selectors.runs_page(team=team, filters=filters(model="m1"), limit=50)
    assert len(page.runs) == 50 and {r.model for r in page.runs} == {"m1"} and page.next_cursor


def test_another_teams_runs_never_show(team, other_team, owner, outsider):
    mine = make_run(team, owner)
    theirs = make_run(other_team, outsider, model="secret-model")
    assert [r.pk for r in selectors.runs_page(team=team, filters=filters()).runs] == [mine.pk]
    # Even a cursor pointing at another team's run does not leak or break the page.
    assert [r.pk for r in selectors.runs_page(team=team, filters=filters(), cursor=str(theirs.pk)).runs] == [mine.pk]
    with pytest.raises(Http404):
        selectors.run_get(team=team, run_id=theirs.pk)
    assert "secret-model" not in selectors.filter_choices(team=team).models


def test_previews_and_replay_links(team, owner):
    chat = make_run(team, owner, input={"messages": [{"role": "system", "content": "Be brief"}, {"role": "user", "content": [{"type": "text", "text": "What is  this?"}, {"type": "image_url", "image_url": {"url": "data:..."}}]}]})
    completion = make_run(team, owner, capability="completion", input={"prompt": "Once upon"}, output_text=" a time")
    embeddings = make_run(team, owner, capability="embeddings", input={"input": ["alpha", "beta", "gamma"]})
    assert selectors.input_preview(chat) == "What is this?"
    assert selectors.input_preview(completion) == "Once upon" and selectors.output_preview(completion) == "a time"
    assert selectors.input_preview(embeddings) == "alpha (+2 more)"
    assert selectors.replay_url(chat) == f"/chat/?run={chat.pk}"
    assert selectors.replay_url(completion) == f"/completions/?run={completion.pk}"
    assert selectors.replay_url(embeddings) == ""
    assert selectors.run_messages(chat)[1] == {"role": "user", "text": "What is  this?", "images": 1, "tool_calls": [], "tool_call_id": ""}


def test_usage_totals_by_day_user_and_model(team, owner, editor):
    today = timezone.localdate()
    noon = timezone.make_aware(dt.datetime.combine(today, dt.time(12)))
    at(make_run(team, owner, model="gpt-4o", prompt_tokens=100, completion_tokens=20, cost=Decimal("0.0100")), noon)
    at(make_run(team, owner, model="gpt-4o", prompt_tokens=50, completion_tokens=5, cost=Decimal("0.0050")), noon - dt.timedelta(days=2))
    at(make_run(team, editor, model="gemma-3-270m", prompt_tokens=10, completion_tokens=30), noon)
    at(make_run(team, editor, model="old", prompt_tokens=999), noon - dt.timedelta(days=40))  # outside the period
    usage = selectors.usage_summary(team=team, date_from=today - dt.timedelta(days=6), date_to=today)
    assert len(usage.days) == 7 and usage.days[-1].key == today
    assert (usage.days[-1].runs, usage.days[-1].prompt_tokens, usage.days[-1].completion_tokens) == (2, 110, 50)
    assert usage.days[-3].cost == Decimal("0.0050") and usage.days[0].runs == 0
    assert usage.total.runs == 3 and usage.total.tokens == 215 and usage.total.cost == Decimal("0.0150")
    assert [(u.label, u.runs) for u in usage.users] == [("olivia", 2), ("edgar", 1)]
    assert [(m.label, m.prompt_tokens) for m in usage.models] == [("gpt-4o", 150), ("gemma-3-270m", 10)]
    chart = usage_chart(usage.days, metric="tokens")
    assert len(chart.bars) == 7 and not chart.empty
    tallest = max(chart.bars, key=lambda b: sum(s.height for s in b.segments))
    assert "110 in + 50 out" in tallest.title and [s.css for s in tallest.segments] == ["seg-in", "seg-out"]
    assert usage_chart(usage.days, metric="cost").bars[-3].title.endswith("over 1 runs")


def test_usage_period_defaults_and_limits():
    today = dt.date(2026, 11, 22)
    q = QueryDict(mutable=True)
    assert selectors.usage_period(q, today=today)[:2] == (dt.date(2026, 10, 24), today)
    q.update({"from": "2020-01-01", "to": "2026-11-22"})
    start, end, errors = selectors.usage_period(q, today=today)
    assert (end - start).days == 365 and "At most 366 days" in errors[0]
