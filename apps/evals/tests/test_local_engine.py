"""Evaluations on the local engine's real models: SmolLM2 (chat) and Gemma 3 270M (completion)."""
from __future__ import annotations

import pytest

from apps.evals.models import EvaluationStatus, Result, Variant
from apps.evals.services import VariantSpec, evaluation_start
from apps.evals.tests.conftest import wait_finished
from apps.prompts.services import prompt_version_create
from apps.proxy.models import Run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_chat_and_completion_versions_side_by_side_on_real_models(team, owner, make_suite):
    local = team.providers.get(kind="local")
    chat = prompt_version_create(team=team, user=owner, name="Colours", messages=[
        {"role": "user", "content": "Name one colour of {{thing}}. One word."}], provider=local, model="smollm2-135m-instruct")
    completion = prompt_version_create(team=team, user=owner, name="Colours (base model)", mode="completion",
                                       text="The colour of {{thing}} is", provider=local, model="gemma-3-270m")
    suite = make_suite([{"thing": "grass"}, {"thing": "the sky"}, {"thing": "snow"}], columns=("thing",),
                       checks=[{"kind": "regex", "value": r"\w"}])
    evaluation = evaluation_start(team=team, user=owner, suite=suite, concurrency=2, variants=[
        VariantSpec(version=chat, provider=local, model="smollm2-135m-instruct", params={"max_tokens": 8, "temperature": 0}),
        VariantSpec(version=completion, provider=local, model="gemma-3-270m", params={"max_tokens": 8, "temperature": 0}),
    ])
    evaluation = wait_finished(evaluation.pk, timeout=300)
    assert evaluation.status == EvaluationStatus.SUCCEEDED, evaluation.error
    results = list(Result.objects.filter(evaluation=evaluation).select_related("variant"))
    assert len(results) == 6
    for result in results:
        assert result.status == "succeeded", result.error
        assert result.output.strip(), f"row {result.row_number} of {result.variant.model} is empty"
        assert result.completion_tokens and 0 < result.completion_tokens <= 8
        assert result.prompt_tokens and result.total_ms and result.total_ms > 0
        run = Run.objects.get(pk=result.run_id)
        assert run.model == result.variant.model and run.capability == ("chat" if result.variant.position == 0 else "completion")
        assert run.prompt_version_id == (chat.pk if result.variant.position == 0 else completion.pk)
        assert result.checks == [{"passed": True, "detail": result.checks[0]["detail"]}]
    sent = Run.objects.filter(group=evaluation.group, capability="completion").values_list("input", flat=True)
    assert sorted(i["prompt"] for i in sent) == ["The colour of grass is", "The colour of snow is", "The colour of the sky is"]
    variants = list(Variant.objects.filter(evaluation=evaluation).order_by("position"))
    assert [(v.done, v.passed, v.failed) for v in variants] == [(3, 3, 0), (3, 3, 0)]
    assert [v.label for v in variants] == ["Colours v1 · smollm2-135m-instruct", "Colours (base model) v1 · gemma-3-270m"]
