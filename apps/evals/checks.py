"""Checks applied to each row's output: contains, equals, regex, JSON valid, JSON schema.

`check_validate` refuses a bad regex or schema when the check is saved, with the reason.
`checks_apply` gives, per check, passed or not and a short detail saying why.
The expected value is the check's own value, or the row's value in the check's column.
"""
from __future__ import annotations

import json
import re
from typing import Any, Mapping

import jsonschema

from apps.evals.models import CheckKind

FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(.*?)\n?```\s*$", re.S)


class CheckError(ValueError):
    def __init__(self, message: str, *, field: str = "value") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _schema(text: str) -> dict[str, Any]:
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckError(f"The schema is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from exc
    if not isinstance(schema, dict):
        raise CheckError("The schema must be a JSON object, e.g. {\"type\": \"object\", \"required\": [\"answer\"]}.")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        raise CheckError(f"The schema is not a valid JSON Schema: {exc.message}" + (f" (at {where})" if where else "") + ".") from exc
    return schema


def _regex(pattern: str, case_sensitive: bool) -> re.Pattern:
    try:
        return re.compile(pattern, 0 if case_sensitive else re.I)
    except re.error as exc:
        at = f" at position {exc.pos}" if exc.pos is not None else ""
        raise CheckError(f"The regular expression is invalid: {exc.msg}{at}.") from exc


def check_validate(*, kind: str, value: str, column: str, columns: list[str], case_sensitive: bool = False) -> None:
    """Raise CheckError saying what to fix; nothing is saved until the check is sound."""
    if kind not in CheckKind.values:
        raise CheckError(f"Unknown check “{kind[:30]}”.", field="kind")
    if column and column not in columns:
        raise CheckError(f"The suite has no column '{column}'. Pick one of: {', '.join(columns) or 'none yet'}.", field="column")
    needs_value = kind in (CheckKind.CONTAINS, CheckKind.NOT_CONTAINS, CheckKind.EQUALS, CheckKind.REGEX, CheckKind.JSON_SCHEMA)
    if needs_value and not column and not value.strip():
        what = {CheckKind.REGEX: "a regular expression", CheckKind.JSON_SCHEMA: "a JSON schema"}.get(kind, "the expected text")
        raise CheckError(f"Write {what}, or take it from a column of each row.")
    if column:
        return  # per-row values are checked when they are used (a bad one fails that row, with the reason)
    if kind == CheckKind.REGEX:
        _regex(value, case_sensitive)
    elif kind == CheckKind.JSON_SCHEMA:
        _schema(value)


def check_label(check: Mapping[str, Any]) -> str:
    kind = check["kind"]
    expected = f"column {check['column']}" if check.get("column") else check.get("value", "")
    names = {
        CheckKind.CONTAINS: "contains", CheckKind.NOT_CONTAINS: "does not contain", CheckKind.EQUALS: "equals",
        CheckKind.REGEX: "matches", CheckKind.JSON_VALID: "is valid JSON", CheckKind.JSON_SCHEMA: "matches schema",
    }
    if kind == CheckKind.JSON_VALID:
        return names[kind]
    if kind == CheckKind.JSON_SCHEMA and not check.get("column"):
        return "matches the JSON schema"
    shown = expected if len(expected) <= 40 else expected[:39] + "…"
    if kind == CheckKind.REGEX and not check.get("column"):
        shown = f"/{shown}/"
    elif not check.get("column"):
        shown = f"“{shown}”"
    return f"{names.get(kind, kind)} {shown}"


def _json_of(output: str) -> Any:
    """The output as JSON; a single ```json fence around it is tolerated (models add them)."""
    text = output.strip()
    fenced = FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    return json.loads(text)


def check_apply(check: Mapping[str, Any], *, output: str, values: Mapping[str, Any]) -> dict[str, Any]:
    kind = check["kind"]
    case = bool(check.get("case_sensitive"))
    if check.get("column"):
        if check["column"] not in values:
            return {"passed": False, "detail": f"the row has no '{check['column']}' value to compare with"}
        expected = str(values.get(check["column"]) or "")
    else:
        expected = check.get("value", "")
    try:
        if kind in (CheckKind.CONTAINS, CheckKind.NOT_CONTAINS):
            found = expected in output if case else expected.casefold() in output.casefold()
            passed = found if kind == CheckKind.CONTAINS else not found
            detail = ("found" if found else "not found") + f" “{expected[:60]}”"
            return {"passed": passed, "detail": detail}
        if kind == CheckKind.EQUALS:
            a, b = output.strip(), expected.strip()
            passed = a == b if case else a.casefold() == b.casefold()
            return {"passed": passed, "detail": "equal" if passed else f"expected “{b[:60]}”"}
        if kind == CheckKind.REGEX:
            match = _regex(expected, case).search(output)
            return {"passed": bool(match), "detail": f"matched “{match.group(0)[:60]}”" if match else f"no match for /{expected[:60]}/"}
        if kind == CheckKind.JSON_VALID:
            try:
                _json_of(output)
            except json.JSONDecodeError as exc:
                return {"passed": False, "detail": f"not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"}
            return {"passed": True, "detail": "valid JSON"}
        if kind == CheckKind.JSON_SCHEMA:
            schema = _schema(expected)
            try:
                data = _json_of(output)
            except json.JSONDecodeError as exc:
                return {"passed": False, "detail": f"not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"}
            error = jsonschema.exceptions.best_match(jsonschema.validators.validator_for(schema)(schema).iter_errors(data))
            if error is None:
                return {"passed": True, "detail": "matches the schema"}
            where = "/".join(str(p) for p in error.absolute_path)
            return {"passed": False, "detail": (f"at {where}: " if where else "") + error.message[:200]}
    except CheckError as exc:  # a bad per-row regex or schema fails that row, saying why
        return {"passed": False, "detail": exc.message}
    return {"passed": False, "detail": f"unknown check {kind}"}


def checks_apply(checks: list[Mapping[str, Any]], *, output: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [check_apply(check, output=output, values=values) for check in checks]
