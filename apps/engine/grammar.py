"""JSON Schema -> GBNF for the local engine, with numeric bounds enforced.

llama-cpp-python's converter ignores `minimum` and `maximum`: the sampled JSON has the
right shape, but a "confidence between 0 and 1" came out as 100, and the chat page then
rightly said it does not validate. This converter adds rules for the bounds people
actually write, so every answer the grammar allows is valid:

- integers from `minimum` to `maximum` (exclusive bounds too), when at most
  MAX_ENUMERATED values lie between: each value is spelled out;
- integers with only a lower bound of 0 or 1 (counts, ids);
- numbers between two whole bounds from 0 up (0 to 1, 1 to 5, 0 to 100): a whole part in
  range and up to FRACTION_DIGITS decimals, the top bound itself only as itself (1, 1.0);
- numbers with only a lower bound of 0.

Other bounds (fractional or negative number bounds, large integer ranges) keep the plain
number rule; the chat page still validates the answer against the schema and says which
value is out of range.
"""
from __future__ import annotations

import copy
import math
from typing import Any

from llama_cpp.llama_grammar import RESERVED_NAMES, SchemaConverter, _build_repetition

MAX_ENUMERATED = 1000
FRACTION_DIGITS = 6
NATURAL = '("0" | [1-9] [0-9]*)'  # a whole number from 0, without leading zeros


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value) and value == int(value)


def _literals(values: range) -> str:
    return "(" + " | ".join(f'"{v}"' for v in values) + ")"


def _integer_bounds(schema: dict[str, Any]) -> tuple[int | None, int | None]:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    lo = math.ceil(lo) if _is_number(lo) else None
    hi = math.floor(hi) if _is_number(hi) else None
    ex_lo, ex_hi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if _is_number(ex_lo):
        lo = max(lo if lo is not None else -math.inf, math.floor(ex_lo) + 1)
    if _is_number(ex_hi):
        hi = min(hi if hi is not None else math.inf, math.ceil(ex_hi) - 1)
    return lo, hi


def integer_rule(schema: dict[str, Any]) -> str | None:
    """GBNF (without trailing space) for a bounded integer, or None to keep the plain rule."""
    lo, hi = _integer_bounds(schema)
    if lo is not None and hi is not None and 0 <= hi - lo < MAX_ENUMERATED:
        return _literals(range(int(lo), int(hi) + 1))
    if hi is None and lo == 0:
        return NATURAL
    if hi is None and lo == 1:
        return "[1-9] [0-9]*"
    return None


def number_rule(schema: dict[str, Any]) -> str | None:
    """GBNF (without trailing space) for a bounded number, or None to keep the plain rule."""
    if "exclusiveMinimum" in schema or "exclusiveMaximum" in schema:
        return None
    lo, hi = schema.get("minimum"), schema.get("maximum")
    fraction = '("." ' + _build_repetition("[0-9]", 1, FRACTION_DIGITS) + ")?"
    if lo is not None and hi is not None and _whole(lo) and _whole(hi) and 0 <= lo < hi and hi - lo < MAX_ENUMERATED:
        below_top = _literals(range(int(lo), int(hi)))
        zeros = '("." ' + _build_repetition('"0"', 1, FRACTION_DIGITS) + ")?"
        return f'({below_top} {fraction} | "{int(hi)}" {zeros})'
    if hi is None and lo is not None and _whole(lo) and lo == 0:
        return f"{NATURAL} {fraction}"
    return None


class BoundedSchemaConverter(SchemaConverter):
    def visit(self, schema: dict[str, Any], name: str) -> str:
        kind = schema.get("type") if isinstance(schema, dict) else None
        if kind in ("integer", "number") and not ({"const", "enum", "$ref", "oneOf", "anyOf"} & schema.keys()):
            rule = integer_rule(schema) if kind == "integer" else number_rule(schema)
            if rule is not None:
                rule_name = name + "-" if name in RESERVED_NAMES else name or "root"  # as the base class
                return self._add_rule(rule_name, f"{rule} space")
        return super().visit(schema, name)


def json_schema_to_gbnf(schema: dict[str, Any]) -> str:
    """What llama_cpp.llama_grammar.json_schema_to_gbnf does, with the bounds above."""
    converter = BoundedSchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    schema = converter.resolve_refs(copy.deepcopy(schema), "stdin")  # it rewrites $refs in place
    converter.visit(schema, "")
    return converter.format_grammar()
