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
class PendingCell:
    """A cell not finished yet: queued, or streaming (with the text so far)."""

    running: bool = False
    output: str = ""
    pending: bool = True


@dataclass
class GridRow:
    number: int
    values: dict[str, Any]
    cells: list[Result | PendingCell]  # one per variant


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
        variant.not_passed = max(variant.done - variant.passed, 0)
        variant.to_go = max(evaluation.row_count - variant.done, 0)
        passes = variant.check_passes or [0] * len(labels)
        variant.check_totals = [{"label": label, "passed": passes[i] if i < len(passes) else 0} for i, label in enumerate(labels)]
        variant.best = False
    if len(variants) > 1 and labels and not evaluation.is_active:
        top = max(v.passed for v in variants)
        leaders = [v for v in variants if v.passed == top]
        if top and len(leaders) == 1:
            leaders[0].best = True
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
    live: dict[tuple[int, int], str] = {}
    if evaluation.is_active:
        from apps.evals.runner import inflight_text

        live = inflight_text(evaluation.pk)
    # Rows not reached yet show the suite's values (one bounded slice, in the run's order).
    unseen = [n for n in wanted if not any((n, v.pk) in by_cell for v in variants)]
    suite_values: dict[int, dict[str, Any]] = {}
    if unseen and not failing:
        first, last = min(unseen), max(unseen)
        rows_slice = TestRow.objects.filter(suite_id=evaluation.suite_id).order_by("position", "id")[first - 1:last]
        suite_values = {first + i: row.values for i, row in enumerate(rows_slice)}
    rows = []
    for number in wanted:
        cells: list[Result | PendingCell] = []
        for variant in variants:
            cell = by_cell.get((number, variant.pk))
            if cell is None:
                text = live.get((number, variant.pk))
                cells.append(PendingCell(running=text is not None, output=text or ""))
                continue
            cell.check_rows = [{"label": labels[i] if i < len(labels) else "", **outcome} for i, outcome in enumerate(cell.checks or [])]
            cells.append(cell)
        values = next((c.values for c in cells if isinstance(c, Result)), None)
        rows.append(GridRow(number=number, values=values if values is not None else suite_values.get(number, {}), cells=cells))
    columns = list(evaluation.suite.columns)
    return Grid(rows=rows, page=paged, columns=columns)


def evaluation_export_rows(*, evaluation: Evaluation):
    """Every cell, one dict per row and variant, read in chunks (for downloads of any size)."""
    variants = {v.pk: v for v in evaluation.variants.all()}
    labels = [check_label(c) for c in evaluation.checks]
    columns = list(evaluation.suite.columns)
    results = Result.objects.filter(evaluation=evaluation).order_by("row_number", "variant__position")
    for result in results.iterator(chunk_size=500):
        variant = variants.get(result.variant_id)
        record: dict[str, Any] = {"row": result.row_number, "variant": variant.label if variant else "", "model": variant.model if variant else ""}
        record.update({f"var:{c}": (result.values or {}).get(c) for c in columns})
        record.update({
            "output": result.output, "status": result.status, "error": result.error,
            "passed": result.passed,
        })
        for index, label in enumerate(labels):
            outcome = result.checks[index] if index < len(result.checks or []) else {}
            record[f"check:{label}"] = outcome.get("passed")
        record.update({
            "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "cost": str(result.cost) if result.cost is not None else None, "total_ms": round(result.total_ms) if result.total_ms is not None else None,
            "run_id": result.run_id,
        })
        yield record
