"""Reads for test suites and evaluations, always scoped to a team (another team's id is 404)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Count, QuerySet

from apps.accounts.models import Team
from apps.accounts.selectors import team_get_object_or_404
from apps.evals.checks import check_label
from apps.evals.models import Check, Evaluation, Result, TestRow, TestSuite, Variant
from apps.prompts.models import PromptVersion

ROWS_PER_PAGE = 50
GRID_ROWS_PER_PAGE = 25


def suites_for_team(*, team: Team) -> QuerySet[TestSuite]:
    return TestSuite.objects.filter(team=team).annotate(row_total=Count("rows", distinct=True))


def suite_get(*, team: Team, suite_id: int | str) -> TestSuite:
    return team_get_object_or_404(TestSuite.objects.select_related("prompt_version__prompt"), team=team, pk=suite_id)


def row_get(*, team: Team, row_id: int | str) -> TestRow:
    return team_get_object_or_404(TestRow.objects.select_related("suite"), team=team, team_field="suite__team", pk=row_id)


def check_get(*, team: Team, check_id: int | str) -> Check:
    return team_get_object_or_404(Check.objects.select_related("suite"), team=team, team_field="suite__team", pk=check_id)


def suite_rows_page(*, suite: TestSuite, page: int | str | None = 1, per_page: int = ROWS_PER_PAGE) -> Page:
    """One page of rows: a COUNT and a LIMIT/OFFSET query, never the whole table."""
    paginator = Paginator(TestRow.objects.filter(suite=suite).order_by("position", "id"), per_page)
    return paginator.get_page(page)


def suite_checks(*, suite: TestSuite) -> list[Check]:
    return list(suite.checks.all())


def versions_for_team(*, team: Team, limit: int = 200) -> list[PromptVersion]:
    return list(PromptVersion.objects.filter(prompt__team=team).select_related("prompt").order_by("prompt__name", "-number")[:limit])


def version_get(*, team: Team, version_id: int | str) -> PromptVersion:
    return team_get_object_or_404(PromptVersion.objects.select_related("prompt"), team=team, team_field="prompt__team", pk=version_id)


def evaluations_for_team(*, team: Team) -> QuerySet[Evaluation]:
    return Evaluation.objects.filter(team=team).select_related("suite", "created_by").prefetch_related("variants")


def evaluation_get(*, team: Team, evaluation_id: int | str) -> Evaluation:
    return team_get_object_or_404(Evaluation.objects.select_related("suite", "created_by"), team=team, pk=evaluation_id)


@dataclass
class GridRow:
    number: int
    values: dict[str, Any]
    cells: list[Result | None]  # one per variant, None while pending


@dataclass
class Grid:
    rows: list[GridRow]
    page: Page
    columns: list[str]


def evaluation_variants(*, evaluation: Evaluation) -> list[Variant]:
    variants = list(evaluation.variants.select_related("prompt_version__prompt").order_by("position"))
    labels = [check_label(c) for c in evaluation.checks]
    for variant in variants:
        variant.letter = "ABCDEFGH"[variant.position % 8]
        passes = variant.check_passes or [0] * len(labels)
        variant.check_totals = [{"label": label, "passed": passes[i] if i < len(passes) else 0} for i, label in enumerate(labels)]
    return variants


def evaluation_grid(*, evaluation: Evaluation, variants: list[Variant], page: int | str | None = 1, failing: bool = False,
                    per_page: int = GRID_ROWS_PER_PAGE) -> Grid:
    """One page of the results grid: row numbers first, then only those rows' cells."""
    if failing:
        numbers: Any = (
            Result.objects.filter(evaluation=evaluation).exclude(passed=True).exclude(status="succeeded", passed__isnull=True)
            .order_by("row_number").values_list("row_number", flat=True).distinct()
        )
    else:
        numbers = range(1, evaluation.row_count + 1)
    paged = Paginator(numbers, per_page).get_page(page)
    wanted = list(paged.object_list)
    by_cell: dict[tuple[int, int], Result] = {}
    for result in Result.objects.filter(evaluation=evaluation, row_number__in=wanted):
        by_cell[(result.row_number, result.variant_id)] = result
    labels = [check_label(c) for c in evaluation.checks]
    rows = []
    for number in wanted:
        cells = [by_cell.get((number, v.pk)) for v in variants]
        for cell in cells:
            if cell is not None:
                cell.check_rows = [{"label": labels[i] if i < len(labels) else "", **outcome} for i, outcome in enumerate(cell.checks or [])]
        values = next((c.values for c in cells if c is not None), {})
        rows.append(GridRow(number=number, values=values, cells=cells))
    columns = list(evaluation.suite.columns)
    return Grid(rows=rows, page=paged, columns=columns)
