"""Reads for the runs history: the team's runs (filtered, keyset-paged), one run, usage totals.

Every function takes the team and filters by it: another team's run is a 404. Paging is by
keyset on (created_at, id), newest first, so page 200 of a 100k-run team costs the same as
page 1 (an index on (team, -created_at) serves it), and a run started while someone reads
never shifts the next page.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.http import Http404
from django.utils import timezone

from apps.accounts.models import Team
from apps.accounts.selectors import team_members
from apps.proxy.models import Capability, Run, RunSource, RunStatus

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_USAGE_DAYS = 366
PREVIEW_CHARS = 160


class FilterError(ValueError):
    """A filter a person can fix (a bad date): `field` names the input."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass
class RunFilters:
    user: int | None = None
    prompt: int | None = None
    model: str = ""
    capability: str = ""
    source: str = ""
    status: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return any((self.user, self.prompt, self.model, self.capability, self.source, self.status, self.date_from, self.date_to))

    def querystring(self) -> str:
        """The filters as a query string (for "load more" and links)."""
        from urllib.parse import urlencode

        pairs = {
            "user": self.user or "", "prompt": self.prompt or "", "model": self.model, "capability": self.capability,
            "source": self.source, "status": self.status,
            "from": self.date_from.isoformat() if self.date_from else "", "to": self.date_to.isoformat() if self.date_to else "",
        }
        return urlencode({k: v for k, v in pairs.items() if v})


def _date(raw: str, label: str, key: str) -> dt.date | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise FilterError(f"{label} “{raw[:20]}” is not a date: use YYYY-MM-DD.", field=key) from None


def _id(raw: str) -> int | None:
    raw = (raw or "").strip()
    return int(raw) if raw.isdigit() else None


def run_filters_parse(params: Any) -> RunFilters:
    """The list's query parameters -> filters. Unknown choices are ignored; bad dates are reported."""
    filters = RunFilters(
        user=_id(params.get("user", "")),
        prompt=_id(params.get("prompt", "")),
        model=(params.get("model") or "").strip()[:200],
        capability=params.get("capability", "") if params.get("capability", "") in Capability.values else "",
        source=params.get("source", "") if params.get("source", "") in RunSource.values else "",
        status=params.get("status", "") if params.get("status", "") in RunStatus.values else "",
    )
    for key, label, attr in (("from", "From", "date_from"), ("to", "To", "date_to")):
        try:
            setattr(filters, attr, _date(params.get(key, ""), label, key))
        except FilterError as exc:
            filters.errors.append(exc.message)
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        filters.errors.append("The date range ends before it starts: swap From and To.")
        filters.date_from, filters.date_to = filters.date_to, filters.date_from
    return filters


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def runs_filtered(*, team: Team, filters: RunFilters) -> QuerySet[Run]:
    qs = Run.objects.filter(team=team)
    if filters.user:
        qs = qs.filter(user_id=filters.user)
    if filters.prompt:
        qs = qs.filter(prompt_version__prompt_id=filters.prompt)
    if filters.model:
        qs = qs.filter(model=filters.model)
    if filters.capability:
        qs = qs.filter(capability=filters.capability)
    if filters.source:
        qs = qs.filter(source=filters.source)
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.date_from:
        qs = qs.filter(created_at__gte=_day_start(filters.date_from))
    if filters.date_to:
        qs = qs.filter(created_at__lt=_day_start(filters.date_to + dt.timedelta(days=1)))
    return qs


@dataclass
class RunPage:
    runs: list[Run]
    next_cursor: str  # "" on the last page


def runs_page(*, team: Team, filters: RunFilters, cursor: str = "", limit: int = PAGE_SIZE) -> RunPage:
    """One page of the team's runs, newest first, after `cursor` (the last run id of the previous page)."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    qs = runs_filtered(team=team, filters=filters)
    after = _id(cursor)
    if after:
        last = Run.objects.filter(team=team, pk=after).values_list("created_at", flat=True).first()
        if last is not None:
            qs = qs.filter(Q(created_at__lt=last) | Q(created_at=last, id__lt=after))
    rows = list(
        qs.select_related("user", "prompt_version__prompt")
        .defer("output", "params")  # previews come from input and output_text
        .order_by("-created_at", "-id")[: limit + 1]
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return RunPage(runs=rows, next_cursor=str(rows[-1].pk) if more and rows else "")


def run_get(*, team: Team, run_id: int) -> Run:
    run = Run.objects.select_related("user", "provider", "prompt_version__prompt").filter(team=team, pk=run_id).first()
    if run is None:
        raise Http404("No such run in your team.")
    return run


def runs_in_group(*, team: Team, run: Run) -> list[Run]:
    """The other runs started together (compare columns, a test table), for links."""
    if not run.group:
        return []
    return list(Run.objects.filter(team=team, group=run.group).exclude(pk=run.pk).only("id", "model", "status", "created_at")[:20])


# -- what the filters offer --------------------------------------------------------------------

@dataclass
class FilterChoices:
    users: list[tuple[int, str]]
    prompts: list[tuple[int, str]]
    models: list[str]
    capabilities: list[tuple[str, str]] = field(default_factory=lambda: list(Capability.choices))
    sources: list[tuple[str, str]] = field(default_factory=lambda: list(RunSource.choices))
    statuses: list[tuple[str, str]] = field(default_factory=lambda: list(RunStatus.choices))


def filter_choices(*, team: Team) -> FilterChoices:
    from apps.prompts.models import Prompt

    users = [(m.user_id, m.user.get_username()) for m in team_members(team=team)]
    prompts = list(Prompt.objects.filter(team=team).order_by("name").values_list("id", "name")[:500])
    models = list(Run.objects.filter(team=team).order_by("model").values_list("model", flat=True).distinct()[:500])
    return FilterChoices(users=users, prompts=prompts, models=[m for m in models if m])


# -- previews --------------------------------------------------------------------------------

def _clip(text: str, limit: int = PREVIEW_CHARS) -> str:
    text = " ".join(str(text).split())
    return text[:limit] + "…" if len(text) > limit else text


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content if not isinstance(part, dict) or part.get("type") in (None, "text", "input_text"))
    return ""


def input_preview(run: Run) -> str:
    """A line of what went in: the last user message, the prompt, the first input."""
    data = run.input or {}
    messages = data.get("messages")
    if isinstance(messages, list) and messages:
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        last = (users or messages)[-1]
        return _clip(_content_text(last.get("content")) if isinstance(last, dict) else str(last))
    for key in ("prompt", "input"):
        value = data.get(key)
        if isinstance(value, str):
            return _clip(value)
        if isinstance(value, list) and value:
            extra = f" (+{len(value) - 1} more)" if len(value) > 1 else ""
            return _clip(str(value[0]), PREVIEW_CHARS - len(extra)) + extra
    return _clip(json.dumps(data, ensure_ascii=False)) if data else ""


def output_preview(run: Run) -> str:
    return _clip(run.output_text) if run.output_text else ""


# -- usage ---------------------------------------------------------------------------------------

@dataclass
class UsageRow:
    key: Any
    label: str
    runs: int
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Usage:
    date_from: dt.date
    date_to: dt.date
    days: list[UsageRow]  # every day of the period, zeros included
    users: list[UsageRow]
    models: list[UsageRow]
    total: UsageRow


_SUMS = {
    "runs": Count("id"),
    "prompt_tokens": Coalesce(Sum("prompt_tokens"), 0),
    "completion_tokens": Coalesce(Sum("completion_tokens"), 0),
    "cost": Coalesce(Sum("cost"), Decimal(0)),
}


def _row(key: Any, label: str, values: dict[str, Any]) -> UsageRow:
    return UsageRow(key=key, label=label, runs=values["runs"], prompt_tokens=values["prompt_tokens"] or 0,
                    completion_tokens=values["completion_tokens"] or 0, cost=Decimal(values["cost"] or 0))


def usage_period(params: Any, *, today: dt.date | None = None) -> tuple[dt.date, dt.date, list[str]]:
    """The usage page's period: ?from=&to= (default: the last 30 days), at most a year."""
    today = today or timezone.localdate()
    errors: list[str] = []
    try:
        date_to = _date(params.get("to", ""), "To", "to") or today
    except FilterError as exc:
        errors.append(exc.message)
        date_to = today
    try:
        date_from = _date(params.get("from", ""), "From", "from") or date_to - dt.timedelta(days=29)
    except FilterError as exc:
        errors.append(exc.message)
        date_from = date_to - dt.timedelta(days=29)
    if date_from > date_to:
        errors.append("The period ends before it starts: swap From and To.")
        date_from, date_to = date_to, date_from
    if (date_to - date_from).days >= MAX_USAGE_DAYS:
        errors.append(f"At most {MAX_USAGE_DAYS} days at once: showing the last {MAX_USAGE_DAYS} days up to To.")
        date_from = date_to - dt.timedelta(days=MAX_USAGE_DAYS - 1)
    return date_from, date_to, errors


def usage_summary(*, team: Team, date_from: dt.date, date_to: dt.date) -> Usage:
    """Tokens, cost and runs of the team per day, per user and per model over a period."""
    qs = runs_filtered(team=team, filters=RunFilters(date_from=date_from, date_to=date_to)).order_by()
    per_day = {
        row["day"]: row
        for row in qs.annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone())).values("day").annotate(**_SUMS)
    }
    days = []
    day = date_from
    zero = {"runs": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost": 0}
    while day <= date_to:
        days.append(_row(day, day.isoformat(), per_day.get(day, zero)))
        day += dt.timedelta(days=1)
    users = [
        _row(row["user_id"], row["user__username"] or "(API token / deleted user)", row)
        for row in qs.values("user_id", "user__username").annotate(**_SUMS).order_by("-cost", "-runs")
    ]
    models = [
        _row(row["model"], row["model"] or "(none)", row)
        for row in qs.values("model").annotate(**_SUMS).order_by("-cost", "-runs")
    ]
    total = _row("total", "Total", qs.aggregate(**_SUMS))
    return Usage(date_from=date_from, date_to=date_to, days=days, users=users, models=models, total=total)


def replay_url(run: Run) -> str:
    """Where the run can be opened again with its request loaded ("" when no playground can)."""
    if run.capability == Capability.CHAT and (run.input or {}).get("messages") is not None:
        return f"/chat/?run={run.pk}"
    if run.capability == Capability.COMPLETION:
        return f"/completions/?run={run.pk}"
    return ""


def run_messages(run: Run) -> list[dict[str, Any]]:
    """A chat run's messages for display: role, text, and what else a message carried."""
    out = []
    for message in (run.input or {}).get("messages") or ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        images = sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url") if isinstance(content, list) else 0
        out.append({
            "role": message.get("role", "?"), "text": _content_text(content), "images": images,
            "tool_calls": message.get("tool_calls") or [], "tool_call_id": message.get("tool_call_id", ""),
        })
    return out
