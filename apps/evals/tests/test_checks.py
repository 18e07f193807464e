"""Checks per row: contains, equals, regex, JSON valid, JSON schema; bad ones refused when saved."""
from __future__ import annotations

import json

import pytest

from apps.evals.checks import check_apply, check_label
from apps.evals.models import Check
from apps.evals.services import EvalInputError, check_add, suite_create

SCHEMA = json.dumps({"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]})


def apply(kind, output, value="", column="", values=None, case_sensitive=False):
    check = {"kind": kind, "value": value, "column": column, "case_sensitive": case_sensitive}
    return check_apply(check, output=output, values=values or {})


def test_contains_and_not_contains_ignore_case_unless_asked():
    assert apply("contains", "The capital is Paris.", "paris")["passed"]
    assert not apply("contains", "The capital is Paris.", "paris", case_sensitive=True)["passed"]
    assert not apply("not_contains", "The capital is Paris.", "Paris")["passed"]
    assert apply("not_contains", "Rome", "Paris")["passed"]


def test_equals_trims_whitespace_and_names_the_expected_value():
    assert apply("equals", "  Paris\n", "Paris")["passed"]
    result = apply("equals", "Lyon", "Paris")
    assert not result["passed"] and "Paris" in result["detail"]


def test_expected_value_from_a_row_column():
    assert apply("contains", "It is Rome.", column="expected", values={"expected": "Rome"})["passed"]
    assert not apply("contains", "It is Rome.", column="expected", values={"expected": "Paris"})["passed"]
    missing = apply("contains", "x", column="expected", values={})
    assert not missing["passed"] and "no 'expected' value" in missing["detail"]


def test_regex_searches_and_reports_the_match():
    result = apply("regex", "Answer: 42 apples", r"\d+ apples")
    assert result["passed"] and "42 apples" in result["detail"]
    assert not apply("regex", "none here", r"^\d+$")["passed"]


def test_json_valid_tolerates_a_code_fence_and_explains_failures():
    assert apply("json_valid", '```json\n{"a": 1}\n```')["passed"]
    result = apply("json_valid", "{'a': 1}")
    assert not result["passed"] and "not JSON" in result["detail"] and "line 1" in result["detail"]


def test_json_schema_names_the_failing_path():
    assert apply("json_schema", '{"answer": "Paris"}', SCHEMA)["passed"]
    result = apply("json_schema", '{"answer": 3}', SCHEMA)
    assert not result["passed"] and result["detail"].startswith("at answer:") and "string" in result["detail"]
    assert "not JSON" in apply("json_schema", "Paris", SCHEMA)["detail"]


def test_a_bad_per_row_regex_fails_that_row_with_the_reason():
    result = apply("regex", "x", column="pattern", values={"pattern": "(unclosed"})
    assert not result["passed"] and "regular expression is invalid" in result["detail"]


def test_labels_read_like_sentences():
    assert check_label({"kind": "contains", "value": "Paris", "column": ""}) == "contains “Paris”"
    assert check_label({"kind": "regex", "value": r"\d+", "column": ""}) == r"matches /\d+/"
    assert check_label({"kind": "equals", "value": "", "column": "expected"}) == "equals column expected"
    assert check_label({"kind": "json_valid", "value": "", "column": ""}) == "is valid JSON"


@pytest.mark.django_db
class TestSaving:
    def _suite(self, team, owner):
        return suite_create(team=team, user=owner, name="S", columns=["city", "expected"])

    def test_bad_regex_is_refused_with_the_reason(self, team, owner):
        with pytest.raises(EvalInputError) as info:
            check_add(suite=self._suite(team, owner), kind="regex", value="(Paris")
        assert "regular expression is invalid" in info.value.message and "position 0" in info.value.message
        assert not Check.objects.exists()

    def test_bad_schema_is_refused_with_the_reason(self, team, owner):
        suite = self._suite(team, owner)
        with pytest.raises(EvalInputError, match="not valid JSON: Expecting"):
            check_add(suite=suite, kind="json_schema", value="{type: object}")
        with pytest.raises(EvalInputError, match="not a valid JSON Schema: 'strin' is not valid"):
            check_add(suite=suite, kind="json_schema", value='{"type": "strin"}')
        assert not Check.objects.exists()

    def test_unknown_column_and_missing_value_are_refused(self, team, owner):
        suite = self._suite(team, owner)
        with pytest.raises(EvalInputError, match="no column 'answer'"):
            check_add(suite=suite, kind="equals", column="answer")
        with pytest.raises(EvalInputError, match="Write the expected text"):
            check_add(suite=suite, kind="contains", value="  ")
        assert check_add(suite=suite, kind="equals", column="expected").column == "expected"
        assert check_add(suite=suite, kind="json_valid").kind == "json_valid"

    def test_the_page_shows_why_a_check_was_refused(self, team, owner, owner_client, transactional_db):
        from django.urls import reverse

        suite = self._suite(team, owner)
        response = owner_client.post(reverse("evals:check_add", args=[suite.pk]), {"kind": "regex", "value": "[a-"})
        assert response.status_code == 400
        assert "regular expression is invalid" in response.content.decode()
