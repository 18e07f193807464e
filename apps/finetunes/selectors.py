"""Reads for fine-tuning, always scoped to a team, and the loss chart's geometry."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import orjson
from django.db.models import QuerySet

from apps.accounts.models import Team
from apps.accounts.selectors import team_get_object_or_404
from apps.finetunes.models import FineTuneJob, JobCheckpoint, JobEvent, TrainingFile
from apps.proxy.models import Capability, Run, RunStatus


def training_files_for_team(*, team: Team) -> QuerySet[TrainingFile]:
    return TrainingFile.objects.filter(team=team).select_related("created_by")


def training_file_get(*, team: Team, file_id: int | str) -> TrainingFile:
    return team_get_object_or_404(TrainingFile, team=team, pk=file_id)


def training_file_rows(*, file: TrainingFile, limit: int = 5) -> list[dict[str, Any]]:
    """The first rows, parsed, for the inspect view (read line by line, never the whole file)."""
    rows = []
    with file.file.open("rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                rows.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                rows.append({"unparsed": line.decode(errors="replace")[:500]})
            if len(rows) >= limit:
                break
    return rows


def example_display(row: dict[str, Any]) -> list[dict[str, str]]:
    """One example as (role label, text, note) lines for the inspect view, in either format."""
    def text(content: Any) -> str:
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(p.get("text", "") if isinstance(p, dict) and p.get("type") == "text" else f"[{p.get('type') if isinstance(p, dict) else 'part'}]" for p in content)
        return "" if content is None else str(content)

    def lines(messages: Any, label: str | None = None, css: str | None = None) -> list[dict[str, str]]:
        out = []
        for m in messages if isinstance(messages, list) else []:
            if not isinstance(m, dict):
                continue
            note = "weight 0" if m.get("weight") == 0 else ""
            calls = m.get("tool_calls")
            body = text(m.get("content"))
            if calls:
                body = (body + " " if body else "") + " ".join(f"{c.get('function', {}).get('name')}({c.get('function', {}).get('arguments', '')})" for c in calls if isinstance(c, dict))
            out.append({"role": label or str(m.get("role", "?")), "css": css or str(m.get("role", "")), "text": body, "note": note})
        return out

    if "unparsed" in row:
        return [{"role": "unparsed", "css": "", "text": row["unparsed"], "note": ""}]
    if "input" in row:
        return (lines((row.get("input") or {}).get("messages")) + lines(row.get("preferred_output"), "preferred", "assistant")
                + lines(row.get("non_preferred_output"), "not preferred", "rejected"))
    return lines(row.get("messages"))


def jobs_for_team(*, team: Team) -> QuerySet[FineTuneJob]:
    return FineTuneJob.objects.filter(team=team).select_related("training_file", "validation_file", "provider", "created_by")


def job_get(*, team: Team, job_id: int | str) -> FineTuneJob:
    return team_get_object_or_404(jobs_for_team(team=team), team=team, pk=job_id)


def job_events(*, job: FineTuneJob, limit: int = 200) -> list[JobEvent]:
    """The latest events, newest first (as OpenAI's dashboard shows them)."""
    return list(job.events.order_by("-created_at", "-id")[:limit])


def job_checkpoints(*, job: FineTuneJob) -> QuerySet[JobCheckpoint]:
    return job.checkpoints.order_by("-step")


def chat_runs_for_team(*, team: Team, limit: int = 100) -> QuerySet[Run]:
    """Saved chat runs that can become training examples."""
    return (Run.objects.filter(team=team, capability=Capability.CHAT, status=RunStatus.SUCCEEDED)
            .exclude(output_text="").select_related("user").order_by("-created_at")[:limit])


# -- the loss chart ---------------------------------------------------------------------------------

@dataclass
class Chart:
    """Everything the template needs to draw an SVG: paths in the viewBox, axis ticks."""

    width: int
    height: int
    train_path: str
    valid_path: str
    train_points: list[tuple[float, float]]
    valid_points: list[tuple[float, float]]
    x_ticks: list[tuple[float, int]]
    y_ticks: list[tuple[float, str]]
    last_train: float | None
    last_valid: float | None
    steps: int
    total_steps: int | None
    left: int
    right: int
    top: int
    bottom: int

    @property
    def empty(self) -> bool:
        return not self.train_points and not self.valid_points


def job_metrics(*, job: FineTuneJob) -> list[tuple[int, float | None, float | None]]:
    """(step, train loss, validation loss) from metrics events, else from checkpoints."""
    rows: dict[int, list[float | None]] = {}
    for step, data in job.events.filter(type="metrics").exclude(step=None).values_list("step", "data"):
        entry = rows.setdefault(step, [None, None])
        if data.get("train_loss") is not None:
            entry[0] = float(data["train_loss"])
        if data.get("valid_loss") is not None:
            entry[1] = float(data["valid_loss"])
    if not rows:
        for step, metrics in job.checkpoints.values_list("step", "metrics"):
            rows[step] = [_float(metrics.get("train_loss")), _float(metrics.get("valid_loss") or metrics.get("full_valid_loss"))]
    return [(step, *rows[step]) for step in sorted(rows)]


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def loss_chart(*, job: FineTuneJob, width: int = 640, height: int = 240) -> Chart:
    metrics = job_metrics(job=job)
    left, right, top, bottom = 44, width - 12, 12, height - 26
    steps = metrics[-1][0] if metrics else 0
    max_step = max(job.total_steps or 0, steps, 1)
    values = [v for _, t, va in metrics for v in (t, va) if v is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    pad = (high - low) * 0.08
    low, high = max(0.0, low - pad), high + pad

    def x(step: int) -> float:
        return round(left + (right - left) * (step / max_step), 1)

    def y(value: float) -> float:
        return round(bottom - (bottom - top) * ((value - low) / (high - low)), 1)

    train = [(x(s), y(t)) for s, t, _ in metrics if t is not None]
    valid = [(x(s), y(v)) for s, _, v in metrics if v is not None]
    y_ticks = [(y(low + (high - low) * i / 4), f"{low + (high - low) * i / 4:.2f}") for i in range(5)]
    stride = max(1, _nice(max_step / 6))
    tick_steps = list(range(0, max_step + 1, stride))
    return Chart(
        width=width, height=height,
        train_path=_path(train), valid_path=_path(valid),
        train_points=train, valid_points=valid,
        x_ticks=[(x(s), s) for s in tick_steps], y_ticks=y_ticks,
        last_train=next((t for _, t, _ in reversed(metrics) if t is not None), None),
        last_valid=next((v for _, _, v in reversed(metrics) if v is not None), None),
        steps=steps, total_steps=job.total_steps, left=left, right=right, top=top, bottom=bottom,
    )


def _nice(value: float) -> int:
    """1, 2, 5, 10, 20, 50 ... at or above value: round axis steps."""
    base = 1
    while True:
        for mult in (1, 2, 5):
            if base * mult >= value:
                return base * mult
        base *= 10


def _path(points: list[tuple[float, float]]) -> str:
    return " ".join(f"{'M' if i == 0 else 'L'}{px},{py}" for i, (px, py) in zip(itertools.count(), points))
