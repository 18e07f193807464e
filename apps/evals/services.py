"""Writes for test suites, their rows and checks, and evaluations.

The model calls themselves happen in apps.evals.runner; this module prepares them
(`cell_request` turns a prompt version and a row into the request) and starts/stops them.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from django.db import OperationalError, transaction
from django.db.models import Max
from django.utils import timezone

from apps.accounts.models import Team
from apps.evals.checks import CheckError, check_validate
from apps.evals.importing import Parsed
from apps.evals.models import (
    ACTIVE_STATUSES, Check, Evaluation, EvaluationStatus, TestRow, TestSuite, Variant,
)
from apps.prompts.models import PromptMode, PromptVersion
from apps.prompts.variables import message_texts, names_in, names_in_all, render, render_messages
from apps.proxy.models import Provider
from apps.proxy.services import worker_gone

logger = logging.getLogger(__name__)

BULK_BATCH = 1000
MAX_VARIANTS = 4
MAX_CONCURRENCY = 8
# Request keys a saved version's params may not override: the evaluation sets them.
RESERVED = {"model", "messages", "prompt", "stream", "stream_options", "tools", "response_format"}


class EvalInputError(ValueError):
    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


# -- suites ------------------------------------------------------------------------------------

def version_variables(version: PromptVersion) -> list[str]:
    if version.mode == PromptMode.COMPLETION:
        return names_in(version.text)
    return names_in_all(text for _, text in message_texts(version.messages or []))


def _clean_column(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise EvalInputError("Name the column.", field="column")
    if len(name) > 100:
        raise EvalInputError("Column names can be at most 100 characters.", field="column")
    return name


@transaction.atomic
def suite_create(*, team: Team, user, name: str, prompt_version: PromptVersion | None = None, columns: list[str] | None = None) -> TestSuite:
    if prompt_version is not None and prompt_version.prompt.team_id != team.pk:
        raise PermissionError("prompt version of another team")
    cols = list(dict.fromkeys([_clean_column(c) for c in (columns or [])]))
    if prompt_version is not None:
        cols = list(dict.fromkeys([*version_variables(prompt_version), *cols]))
    name = (name or "").strip() or (f"Tests for {prompt_version.prompt.name}" if prompt_version else "Untitled suite")
    return TestSuite.objects.create(team=team, name=name[:200], prompt_version=prompt_version, columns=cols, created_by=user)


@transaction.atomic
def suite_update(*, suite: TestSuite, name: str, description: str = "") -> TestSuite:
    name = (name or "").strip()
    if not name:
        raise EvalInputError("Name the suite.", field="name")
    suite.name, suite.description = name[:200], description.strip()
    suite.save(update_fields=["name", "description", "updated_at"])
    return suite


DELETE_ATTEMPTS = 3
DEADLOCK = "40P01"  # PostgreSQL's SQLSTATE for deadlock_detected


def suite_delete(*, suite: TestSuite) -> None:
    """Delete the suite, its rows and evaluations; a running evaluation is stopped first.

    A stopping runner may still be writing its last result: on PostgreSQL the cascade and
    that write can lock the same rows in opposite orders, and the database then aborts one
    of them as a deadlock. The delete is one transaction, so it is simply tried again.
    """
    for evaluation in suite.evaluations.filter(status__in=ACTIVE_STATUSES):
        evaluation_stop(evaluation=evaluation)
    for attempt in range(DELETE_ATTEMPTS):
        try:
            with transaction.atomic():
                suite.delete()
            return
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != DEADLOCK or attempt == DELETE_ATTEMPTS - 1:
                raise
            logger.info("deleting suite %s met a stopping evaluation's write; trying again", suite.pk)
            time.sleep(0.1 * (attempt + 1))


@transaction.atomic
def suite_column_add(*, suite: TestSuite, name: str) -> TestSuite:
    name = _clean_column(name)
    if name in suite.columns:
        raise EvalInputError(f"The suite already has a column '{name}'.", field="column")
    suite.columns = [*suite.columns, name]
    suite.save(update_fields=["columns", "updated_at"])
    return suite


@transaction.atomic
def suite_column_remove(*, suite: TestSuite, name: str) -> TestSuite:
    """Hide a column; the rows keep their values (adding it back shows them again)."""
    suite.columns = [c for c in suite.columns if c != name]
    suite.save(update_fields=["columns", "updated_at"])
    return suite


@transaction.atomic
def suite_columns_from_version(*, suite: TestSuite, version: PromptVersion) -> TestSuite:
    if version.prompt.team_id != suite.team_id:
        raise PermissionError("prompt version of another team")
    suite.columns = list(dict.fromkeys([*version_variables(version), *suite.columns]))
    suite.prompt_version = version
    suite.save(update_fields=["columns", "prompt_version", "updated_at"])
    return suite


# -- rows --------------------------------------------------------------------------------------

def _next_position(suite: TestSuite) -> int:
    return (suite.rows.aggregate(m=Max("position"))["m"] or 0) + 1


@transaction.atomic
def row_add(*, suite: TestSuite, values: dict[str, str]) -> TestRow:
    TestSuite.objects.select_for_update().filter(pk=suite.pk).first()
    row = TestRow.objects.create(suite=suite, position=_next_position(suite), values={k: str(v) for k, v in values.items()})
    TestSuite.objects.filter(pk=suite.pk).update(updated_at=timezone.now())
    return row


@transaction.atomic
def row_update(*, row: TestRow, values: dict[str, str]) -> TestRow:
    row.values = {**row.values, **{k: str(v) for k, v in values.items()}}
    row.save(update_fields=["values"])
    return row


def row_delete(*, row: TestRow) -> None:
    row.delete()


@transaction.atomic
def rows_import(*, suite: TestSuite, parsed: Parsed, replace: bool = False) -> int:
    """Append (or replace with) the parsed rows, in bulk. New columns join the suite's."""
    TestSuite.objects.select_for_update().filter(pk=suite.pk).first()
    if replace:
        suite.rows.all().delete()
    start = 1 if replace else _next_position(suite)
    batch: list[TestRow] = []
    for offset, values in enumerate(parsed.rows):
        batch.append(TestRow(suite=suite, position=start + offset, values=values))
        if len(batch) >= BULK_BATCH:
            TestRow.objects.bulk_create(batch)
            batch = []
    if batch:
        TestRow.objects.bulk_create(batch)
    new_columns = [c for c in parsed.columns if c not in suite.columns]
    if new_columns:
        suite.columns = [*suite.columns, *new_columns]
    suite.save(update_fields=["columns", "updated_at"])
    return len(parsed.rows)


# -- checks ------------------------------------------------------------------------------------

@transaction.atomic
def check_add(*, suite: TestSuite, kind: str, value: str = "", column: str = "", case_sensitive: bool = False) -> Check:
    try:
        check_validate(kind=kind, value=value, column=column, columns=suite.columns, case_sensitive=case_sensitive)
    except CheckError as exc:
        raise EvalInputError(exc.message, field=exc.field) from exc
    return Check.objects.create(suite=suite, kind=kind, value=value if not column else "", column=column, case_sensitive=case_sensitive)


def check_delete(*, check: Check) -> None:
    check.delete()


# -- evaluations -------------------------------------------------------------------------------

@dataclass
class VariantSpec:
    version: PromptVersion
    provider: Provider
    model: str
    params: dict[str, Any]


def cell_request(*, version: PromptVersion, model: str, params: dict[str, Any], values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(kind, request) for one row; VariableError names a missing value or a broken `{{`."""
    base = {k: v for k, v in (version.params or {}).items() if k not in RESERVED}
    base.update({k: v for k, v in params.items() if k not in RESERVED})
    if version.mode == PromptMode.COMPLETION:
        request = {"model": model, "prompt": render(version.text, values, where="prompt"), **base}
        return "completion", request
    request = {"model": model, "messages": render_messages(version.messages or [], values), **base}
    if version.tools:
        request["tools"] = version.tools
    if version.response_format:
        request["response_format"] = version.response_format
    return "chat", request


def variant_label(spec: VariantSpec, *, others: list[VariantSpec]) -> str:
    version = f"{spec.version.prompt.name} v{spec.version.number}"
    same_version = all(o.version.pk == spec.version.pk for o in others)
    same_model = all(o.model == spec.model and o.provider.pk == spec.provider.pk for o in others)
    parts = []
    if not same_version or same_model:
        parts.append(version)
    if not same_model or same_version:
        parts.append(spec.model)
    if same_version and same_model and spec.params:
        parts.append(", ".join(f"{k}={v}" for k, v in spec.params.items()))
    return " · ".join(parts)


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@transaction.atomic
def evaluation_create(*, team: Team, user, suite: TestSuite, variants: list[VariantSpec], concurrency: int = 4) -> Evaluation:
    """Save an evaluation (queued); `evaluation_start` runs it once this commits."""
    if suite.team_id != team.pk:
        raise PermissionError("suite of another team")
    if not variants:
        raise EvalInputError("Pick a prompt version and a model to run.")
    if len(variants) > MAX_VARIANTS:
        raise EvalInputError(f"Compare at most {MAX_VARIANTS} variants at once.")
    for spec in variants:
        if spec.version.prompt.team_id != team.pk or spec.provider.team_id != team.pk:
            raise PermissionError("version or provider of another team")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise EvalInputError(f"Concurrency must be between 1 and {MAX_CONCURRENCY}.", field="concurrency")
    row_count = suite.rows.count()
    if not row_count:
        raise EvalInputError("The suite has no rows yet: add, paste or import some test cases first.")
    checks = [
        {"kind": c.kind, "value": c.value, "column": c.column, "case_sensitive": c.case_sensitive}
        for c in suite.checks.all()
    ]
    evaluation = Evaluation.objects.create(
        team=team, suite=suite, created_by=user if getattr(user, "is_authenticated", False) else None,
        concurrency=concurrency, checks=checks, row_count=row_count, total=row_count * len(variants), worker=_worker(),
    )
    Variant.objects.bulk_create([
        Variant(
            evaluation=evaluation, position=index, prompt_version=spec.version, provider=spec.provider,
            provider_name=spec.provider.name, model=spec.model, params=spec.params,
            label=variant_label(spec, others=[o for o in variants if o is not spec]), check_passes=[0] * len(checks),
        )
        for index, spec in enumerate(variants)
    ])
    TestSuite.objects.filter(pk=suite.pk).update(updated_at=timezone.now())
    return evaluation


def evaluation_start(*, team: Team, user, suite: TestSuite, variants: list[VariantSpec], concurrency: int = 4) -> Evaluation:
    """Create the evaluation and run it in the background of this server process."""
    from apps.evals import runner

    evaluation = evaluation_create(team=team, user=user, suite=suite, variants=variants, concurrency=concurrency)
    transaction.on_commit(lambda: runner.spawn(evaluation_id=evaluation.pk))
    return evaluation


def evaluation_stop(*, evaluation: Evaluation) -> Evaluation:
    """Stop: the cells in flight are cancelled (their partial output kept), finished ones stay."""
    from apps.evals import runner

    if not evaluation.is_active:
        return evaluation
    Evaluation.objects.filter(pk=evaluation.pk).update(cancel_requested=True)
    if not runner.cancel(evaluation_id=evaluation.pk):
        # Not running in this process. If its process is gone, nothing will ever finish it.
        if worker_gone(evaluation.worker):
            evaluations_mark_interrupted()
    evaluation.refresh_from_db()
    return evaluation


def evaluation_delete(*, evaluation: Evaluation) -> None:
    if evaluation.is_active:
        raise EvalInputError("Stop the evaluation before deleting it.")
    evaluation.delete()


def evaluations_mark_interrupted() -> int:
    """Evaluations left running by a process of this host that is gone become 'interrupted'.

    Called at server start (apps.proxy.startup). Their finished cells are kept.
    """
    dead = [evaluation_id for evaluation_id, worker
            in Evaluation.objects.filter(status__in=ACTIVE_STATUSES).values_list("id", "worker") if worker_gone(worker)]
    if dead:
        Evaluation.objects.filter(id__in=dead).update(
            status=EvaluationStatus.INTERRUPTED,
            error="The server stopped while this evaluation was running; the cells finished until then are kept.",
            finished_at=timezone.now(),
        )
        logger.warning("marked %d evaluations interrupted (their server process had stopped)", len(dead))
    return len(dead)
    return True

