"""Evaluation pages: suites (rows, import, checks), the run form, and the results grid.

Thin: parse, authorise (team_required), call one service or selector, render.
"""
from __future__ import annotations

import csv
import io
import json
import logging
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.accounts.decorators import team_required
from apps.accounts.models import Role
from apps.evals import selectors, services
from apps.evals.checks import check_label
from apps.evals.importing import ImportError_, parse_paste, parse_upload
from apps.evals.models import CheckKind
from apps.evals.services import EvalInputError, VariantSpec
from apps.proxy.errors import ProxyError
from apps.proxy.selectors import ModelIndex, model_index, parse_model_key, provider_get

logger = logging.getLogger(__name__)


def _can_edit(request) -> bool:
    return request.membership.allows(Role.EDITOR)


# -- suites ------------------------------------------------------------------------------------

@team_required()
def index(request):
    error = ""
    if request.method == "POST":
        version = None
        version_id = request.POST.get("prompt_version") or ""
        if version_id:
            version = selectors.version_get(team=request.team, version_id=version_id)
        columns = [c for c in (request.POST.get("columns") or "").replace("\n", ",").split(",") if c.strip()]
        try:
            suite = services.suite_create(team=request.team, user=request.user, name=request.POST.get("name", ""),
                                          prompt_version=version, columns=columns)
        except EvalInputError as exc:
            error = exc.message
        else:
            return redirect("evals:suite", suite_id=suite.pk)
    preselect = request.POST.get("prompt_version") or request.GET.get("version") or ""
    context = {
        "preselect": int(preselect) if str(preselect).isdigit() else None,
        "suites": selectors.suites_for_team(team=request.team)[:100],
        "evaluations": selectors.evaluations_for_team(team=request.team)[:20],
        "versions": selectors.versions_for_team(team=request.team),
        "can_edit": _can_edit(request),
        "error": error,
    }
    return render(request, "evals/index.html", context, status=400 if error else 200)


def _run_models(team) -> ModelIndex:
    index = async_to_sync(model_index)(team=team)
    usable = [m for m in index.models if m.supports("chat") or m.supports("completion") or not m.known]
    return ModelIndex(models=usable, errors=index.errors)


def _suite_context(request, suite, **extra: Any) -> dict[str, Any]:
    versions = selectors.versions_for_team(team=request.team)
    index = _run_models(request.team)
    asked = request.GET.get("version") or ""
    default_version = next((v for v in versions if str(v.pk) == asked), None) or suite.prompt_version or (versions[0] if versions else None)
    selected = ""
    if default_version is not None and default_version.provider_id and default_version.model:
        selected = f"{default_version.provider_id}:{default_version.model}"
    if not any(m.key == selected for m in index.models):
        wanted = "completion" if default_version is not None and default_version.mode == "completion" else "chat"
        selected = next((m.key for m in index.models if m.supports(wanted)), index.models[0].key if index.models else "")
    checks = selectors.suite_checks(suite=suite)
    for check in checks:
        check.label = check_label({"kind": check.kind, "value": check.value, "column": check.column})
    context = {
        "suite": suite,
        "rows": selectors.suite_rows_page(suite=suite, page=request.GET.get("page")),
        "checks": checks,
        "check_kinds": CheckKind.choices,
        "versions": versions,
        "default_version": default_version,
        "index": index,
        "selected": selected,
        "evaluations": suite.evaluations.prefetch_related("variants")[:10],
        "can_edit": _can_edit(request),
        "concurrency_choices": range(1, services.MAX_CONCURRENCY + 1),
    }
    context.update(extra)
    return context


@team_required()
def suite_detail(request, suite_id: int):
    suite = selectors.suite_get(team=request.team, suite_id=suite_id)
    if request.htmx and request.GET.get("partial") == "rows":
        return render(request, "evals/suite.html#rows", _suite_context(request, suite))
    return render(request, "evals/suite.html", _suite_context(request, suite))


def _suite_error(request, suite, status: int = 400, **errors: str):
    return render(request, "evals/suite.html", _suite_context(request, suite, **errors), status=status)


@team_required()
@require_POST
def suite_edit(request, suite_id: int):
    suite = selectors.suite_get(team=request.team, suite_id=suite_id)
    try:
        services.suite_update(suite=suite, name=request.POST.get("name", ""), description=request.POST.get("description", ""))
    except EvalInputError as exc:
        return _suite_error(request, suite, suite_error=exc.message)
    return redirect("evals:suite", suite_id=suite.pk)


@team_required()
@require_POST
def suite_delete(request, suite_id: int):
    suite = selectors.suite_get(team=request.team, suite_id=suite_id)
    name = suite.name
    services.suite_delete(suite=suite)
    messages.success(request, f"Deleted the suite “{name}”.")
    return redirect("evals:index")


@team_required()
@require_POST
def suite_columns(request, suite_id: int):
    suite = selectors.suite_get(team=request.team, suite_id=suite_id)
    action = request.POST.get("action", "add")
    try:
        if action == "remove":
            services.suite_column_remove(suite=suite, name=request.POST.get("column", ""))
        elif action == "from_version":
            version = selectors.version_get(team=request.team, version_id=request.POST.get("prompt_version") or 0)
            services.suite_columns_from_version(suite=suite, version=version)
        else:
            services.suite_column_add(suite=suite, name=request.POST.get("column", ""))
    except EvalInputError as exc:
        return _suite_error(request, suite, column_error=exc.message)
    return redirect("evals:suite", suite_id=suite.pk)


def _row_values(request, columns: list[str]) -> dict[str, str]:
    return {name: request.POST.get(f"v:{name}", "") for name in columns if f"v:{name}" in request.POST}


@team_required()
@require_POST
def row_add(request, suite_id: int):
    suite = selectors.suite_get(team=request.team, suite_id=suite_id)
    if not suite.columns:
        return _suite_error(request, suite, rows_error="Add a column first (or take the columns from a prompt version).")
    services.row_add(suite=suite, values=_row_values(request, suite.columns))
    last = selectors.suite_rows_page(suite=suite).paginator.num_pages
    return redirect(f"{reverse('evals:suite', args=[suite.pk])}?page={last}#rows")


@team_required()
@require_POST
def row_update(request, row_id: int):
    row = selectors.row_get(team=request.team, row_id=row_id)
    services.row_update(row=row, values=_row_values(request, row.suite.columns))
    if request.htmx:
        return render(request, "evals/_row.html", {"row": row, "suite": row.suite, "can_edit": True, "saved": True})
    return redirect("evals:suite", suite_id=row.suite_id)


@team_required()
@require_POST
def row_delete(request, row_id: int):
    row = selectors.row_get(team=request.team, row_id=row_id)
    suite_id = row.suite_id
    services.row_delete(row=row)
    if request.htmx:
        return HttpResponse("")
    return redirect("evals:suite", suite_id=suite_id)


@team_required()
@require_POST
def suite_import(request, suite_id: int):
    suite = selectors.suite_get(team=request.team, suite_id=suite_id)
    upload = request.FILES.get("file")
    try:
        if upload is not None:
            parsed = parse_upload(upload.read(), filename=upload.name, required=suite.columns)
        elif (request.POST.get("pasted") or "").strip():
            parsed = parse_paste(request.POST["pasted"], columns=suite.columns)
        else:
            raise ImportError_("Choose a CSV or JSONL file, or paste rows, to import.")
        count = services.rows_import(suite=suite, parsed=parsed, replace=request.POST.get("replace") == "on")
    except ImportError_ as exc:
        return _suite_error(request, suite, import_error=exc.message)
    messages.success(request, f"Added {count:,} row{'s' if count != 1 else ''}.")
    return redirect("evals:suite", suite_id=suite.pk)


@team_required()
@require_POST
def check_add(request, suite_id: int):
    suite = selectors.suite_get(team=request.team, suite_id=suite_id)
    try:
        services.check_add(
            suite=suite, kind=request.POST.get("kind", ""), value=request.POST.get("value", ""),
            column=request.POST.get("column", ""), case_sensitive=request.POST.get("case_sensitive") == "on",
        )
    except EvalInputError as exc:
        return _suite_error(request, suite, check_error=exc.message, check_form=request.POST)
    return redirect(f"{reverse('evals:suite', args=[suite.pk])}#checks")


@team_required()
@require_POST
def check_delete(request, check_id: int):
    check = selectors.check_get(team=request.team, check_id=check_id)
    suite_id = check.suite_id
    services.check_delete(check=check)
    return redirect(f"{reverse('evals:suite', args=[suite_id])}#checks")


# -- evaluations -------------------------------------------------------------------------------

def _number(raw: str, *, label: str, lo: float, hi: float, integer: bool) -> float | int | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise EvalInputError(f"{label} must be a{'n integer' if integer else ' number'} (got “{raw[:20]}”).") from None
    if not lo <= value <= hi:
        raise EvalInputError(f"{label} must be between {lo:g} and {hi:g}.")
    return value


def _variant_from(request, slot: int) -> VariantSpec | None:
    post = request.POST
    version_id = post.get(f"version_{slot}") or ""
    if not version_id:
        return None
    version = selectors.version_get(team=request.team, version_id=version_id)
    try:
        provider_id, model = parse_model_key(post.get(f"model_key_{slot}", ""))
    except ProxyError as exc:
        raise EvalInputError(exc.message) from exc
    provider = provider_get(team=request.team, provider_id=provider_id)
    params: dict[str, Any] = {}
    name = "A" if slot == 0 else chr(ord("A") + slot)
    temperature = _number(post.get(f"temperature_{slot}", ""), label=f"{name}: temperature", lo=0, hi=2, integer=False)
    if temperature is not None:
        params["temperature"] = temperature
    max_tokens = _number(post.get(f"max_tokens_{slot}", ""), label=f"{name}: max tokens", lo=1, hi=1_000_000, integer=True)
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    return VariantSpec(version=version, provider=provider, model=model, params=params)


@team_required()
@require_POST
def suite_run(request, suite_id: int):
    suite = selectors.suite_get(team=request.team, suite_id=suite_id)
    try:
        variants = [spec for spec in (_variant_from(request, slot) for slot in range(services.MAX_VARIANTS)) if spec]
        if len(variants) > 1 and request.POST.get("compare") != "on":
            variants = variants[:1]
        concurrency = int(_number(request.POST.get("concurrency", "4"), label="Concurrency", lo=1, hi=services.MAX_CONCURRENCY, integer=True) or 4)
        evaluation = services.evaluation_start(team=request.team, user=request.user, suite=suite, variants=variants, concurrency=concurrency)
    except EvalInputError as exc:
        return _suite_error(request, suite, run_error=exc.message)
    return redirect("evals:evaluation", evaluation_id=evaluation.pk)


def _evaluation_context(request, evaluation) -> dict[str, Any]:
    variants = selectors.evaluation_variants(evaluation=evaluation)
    failing = request.GET.get("failing") == "1"
    grid = selectors.evaluation_grid(evaluation=evaluation, variants=variants, page=request.GET.get("page"), failing=failing)
    return {
        "evaluation": evaluation,
        "suite": evaluation.suite,
        "variants": variants,
        "grid": grid,
        "failing": failing,
        "has_checks": bool(evaluation.checks),
        "can_edit": _can_edit(request),
    }


@team_required()
def evaluation_detail(request, evaluation_id: int):
    evaluation = selectors.evaluation_get(team=request.team, evaluation_id=evaluation_id)
    return render(request, "evals/evaluation.html", _evaluation_context(request, evaluation))


@team_required()
def evaluation_results(request, evaluation_id: int):
    """The live part of the page (progress, totals, the grid's current page), polled while running."""
    evaluation = selectors.evaluation_get(team=request.team, evaluation_id=evaluation_id)
    return render(request, "evals/evaluation.html#results", _evaluation_context(request, evaluation))


@team_required()
@require_POST
def evaluation_stop(request, evaluation_id: int):
    evaluation = selectors.evaluation_get(team=request.team, evaluation_id=evaluation_id)
    services.evaluation_stop(evaluation=evaluation)
    if request.htmx:
        return render(request, "evals/evaluation.html#results", _evaluation_context(request, evaluation))
    return redirect("evals:evaluation", evaluation_id=evaluation.pk)


@team_required()
def evaluation_download(request, evaluation_id: int):
    """Every cell as CSV (one line per row and variant) or JSONL, streamed in chunks."""
    evaluation = selectors.evaluation_get(team=request.team, evaluation_id=evaluation_id)
    fmt = "jsonl" if request.GET.get("format") == "jsonl" else "csv"
    records = selectors.evaluation_export_rows(evaluation=evaluation)
    if fmt == "jsonl":
        lines = (json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        response = StreamingHttpResponse(lines, content_type="application/x-ndjson; charset=utf-8")
    else:
        response = StreamingHttpResponse(_csv_lines(records), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="evaluation-{evaluation.pk}.{fmt}"'
    return response


def _csv_lines(records):
    buffer = io.StringIO()
    writer = None
    for record in records:
        if writer is None:
            writer = csv.DictWriter(buffer, fieldnames=list(record))
            writer.writeheader()
        writer.writerow({k: "" if v is None else v for k, v in record.items()})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


@team_required()
@require_POST
def evaluation_delete(request, evaluation_id: int):
    evaluation = selectors.evaluation_get(team=request.team, evaluation_id=evaluation_id)
    suite_id = evaluation.suite_id
    try:
        services.evaluation_delete(evaluation=evaluation)
    except EvalInputError as exc:
        messages.error(request, exc.message)
        return redirect("evals:evaluation", evaluation_id=evaluation.pk)
    return redirect("evals:suite", suite_id=suite_id)
