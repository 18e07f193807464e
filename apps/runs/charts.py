"""A server-rendered bar chart of usage per day (SVG geometry; the template draws it).

No JavaScript and no chart library: the page is a template, hovering a bar shows its
numbers through the SVG <title>.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from apps.runs.selectors import UsageRow

WIDTH, HEIGHT = 960, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 14, 28
METRICS = {"tokens": "Tokens", "cost": "Cost (USD)", "runs": "Runs"}


@dataclass
class Segment:
    y: float
    height: float
    css: str


@dataclass
class Bar:
    x: float
    width: float
    segments: list[Segment]
    title: str


@dataclass
class Tick:
    y: float
    label: str


@dataclass
class Label:
    x: float
    text: str


@dataclass
class Chart:
    width: int
    height: int
    left: int
    plot_bottom: float
    plot_right: float
    bars: list[Bar]
    ticks: list[Tick]
    labels: list[Label]
    metric: str
    metric_label: str
    empty: bool


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2, 2.5, 5 x 10^k)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def _fmt(value: float, metric: str) -> str:
    if metric == "cost":
        return f"${value:,.6f}".rstrip("0").rstrip(".") if value < 1 else f"${value:,.2f}"
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000:
        return f"{value / 1_000:g}k"
    return f"{value:g}"


def usage_chart(days: list[UsageRow], *, metric: str = "tokens") -> Chart:
    metric = metric if metric in METRICS else "tokens"
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    values: list[list[tuple[float, str]]] = []
    for day in days:
        if metric == "tokens":
            values.append([(float(day.prompt_tokens), "seg-in"), (float(day.completion_tokens), "seg-out")])
        elif metric == "cost":
            values.append([(float(day.cost or Decimal(0)), "seg-cost")])
        else:
            values.append([(float(day.runs), "seg-runs")])
    top = _nice_max(max((sum(v for v, _ in parts) for parts in values), default=0))
    slot = plot_w / max(len(days), 1)
    bar_w = max(2.0, slot * 0.72)
    bars = []
    for i, (day, parts) in enumerate(zip(days, values)):
        x = LEFT + i * slot + (slot - bar_w) / 2
        base = TOP + plot_h
        segments = []
        for value, css in parts:
            h = plot_h * value / top if top else 0
            if h > 0:
                segments.append(Segment(y=round(base - h, 2), height=round(h, 2), css=css))
                base -= h
        if metric == "tokens":
            title = f"{day.label}: {day.prompt_tokens:,} in + {day.completion_tokens:,} out tokens, {day.runs:,} runs"
        elif metric == "cost":
            title = f"{day.label}: ${day.cost:,.6f} over {day.runs:,} runs"
        else:
            title = f"{day.label}: {day.runs:,} runs"
        bars.append(Bar(x=round(x, 2), width=round(bar_w, 2), segments=segments, title=title))
    ticks = [Tick(y=round(TOP + plot_h - plot_h * k / 4, 2), label=_fmt(top * k / 4, metric)) for k in range(5)]
    every = max(1, math.ceil(len(days) / 10))
    labels = [
        Label(x=round(LEFT + i * slot + slot / 2, 2), text=day.key.strftime("%b %d") if hasattr(day.key, "strftime") else day.label)
        for i, day in enumerate(days) if i % every == 0
    ]
    empty = not any(sum(v for v, _ in parts) for parts in values)
    return Chart(width=WIDTH, height=HEIGHT, left=LEFT, plot_bottom=TOP + plot_h, plot_right=WIDTH - RIGHT, bars=bars,
                 ticks=ticks, labels=labels, metric=metric, metric_label=METRICS[metric], empty=empty)
