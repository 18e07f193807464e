from __future__ import annotations

import time

import pytest


@pytest.fixture
def city_version(team, owner, upstream_provider):
    """A chat version with one variable, saved for the test upstream's gpt-4o-mini."""
    from apps.prompts.services import prompt_version_create

    return prompt_version_create(
        team=team, user=owner, name="Capitals",
        messages=[{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Capital of {{city}}"}],
        provider=upstream_provider, model="gpt-4o-mini", params={"temperature": 0},
    )


@pytest.fixture
def make_suite(team, owner):
    def make(rows, *, columns=("city",), checks=()):
        from apps.evals.importing import Parsed
        from apps.evals.services import check_add, rows_import, suite_create

        suite = suite_create(team=team, user=owner, name="Suite", columns=list(columns))
        rows_import(suite=suite, parsed=Parsed(columns=list(columns), rows=list(rows)))
        for check in checks:
            check_add(suite=suite, **check)
        return suite

    return make


def wait_finished(evaluation_id: int, timeout: float = 60.0):
    from apps.evals.models import Evaluation

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        evaluation = Evaluation.objects.get(pk=evaluation_id)
        if not evaluation.is_active:
            return evaluation
        time.sleep(0.05)
    raise AssertionError(f"evaluation {evaluation_id} still {evaluation.status} after {timeout} s ({evaluation.done}/{evaluation.total})")


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.03)
    raise AssertionError(f"timed out waiting for {what}")
