"""The runs history: the team's runs (filters, keyset pages), one run, usage over a period."""
from __future__ import annotations

import json

from django.shortcuts import render

from apps.accounts.decorators import team_required
from apps.accounts.models import Role
from apps.runs import selectors
from apps.runs.charts import METRICS, usage_chart


@team_required()
def run_list(request):
    filters = selectors.run_filters_parse(request.GET)
    page = selectors.runs_page(team=request.team, filters=filters, cursor=request.GET.get("after", ""))
    rows = [
        {"run": r, "input": selectors.input_preview(r), "output": selectors.output_preview(r), "latency": duration(r.total_ms)}
        for r in page.runs
    ]
    context = {"rows": rows, "page": page, "filters": filters, "qs": filters.querystring()}
    if request.htmx and request.GET.get("after"):
        return render(request, "runs/_rows.html", context)  # "Load more": the next rows only
    context["choices"] = selectors.filter_choices(team=request.team)
    return render(request, "runs/list.html", context)


@team_required()
def run_detail(request, run_id: int):
    run = selectors.run_get(team=request.team, run_id=run_id)
    context = {
        "run": run,
        "messages": selectors.run_messages(run),
        "prompt_text": _text((run.input or {}).get("prompt")),
        "suffix": (run.input or {}).get("suffix", ""),
        "other_input": {k: v for k, v in (run.input or {}).items() if k not in ("messages", "prompt", "suffix")},
        "request_json": json.dumps({"model": run.model, **(run.input or {}), **(run.params or {})}, indent=2, ensure_ascii=False),
        "output_json": json.dumps(run.output or {}, indent=2, ensure_ascii=False),
        "choices": (run.output or {}).get("choices") or [],
        "replay_url": selectors.replay_url(run),
        "group": selectors.runs_in_group(team=request.team, run=run),
        # Share links live in the prompts app (its run_share view creates them).
        "can_share": request.membership.allows(Role.EDITOR),
    }
    return render(request, "runs/detail.html", context)


def duration(ms: float | None) -> str:
    if ms is None:
        return ""
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def _text(value) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else "\n".join(map(str, value))


@team_required()
def usage(request):
    date_from, date_to, errors = selectors.usage_period(request.GET)
    summary = selectors.usage_summary(team=request.team, date_from=date_from, date_to=date_to)
    metric = request.GET.get("metric", "tokens")
    chart = usage_chart(summary.days, metric=metric)
    return render(request, "runs/usage.html", {
        "usage": summary, "chart": chart, "errors": errors, "metrics": METRICS,
        "period_qs": f"from={date_from.isoformat()}&to={date_to.isoformat()}",
    })
