"""The engine's JSON Schema -> GBNF converter: which bounds become rules, and that every
grammar it writes is one llama.cpp accepts. (test_text.py samples with it.)"""
from __future__ import annotations

import pytest
from llama_cpp import LlamaGrammar

from apps.engine.grammar import integer_rule, json_schema_to_gbnf, number_rule


@pytest.mark.parametrize("schema, values", [
    ({"minimum": 1, "maximum": 3}, ["1", "2", "3"]),
    ({"exclusiveMinimum": 0, "exclusiveMaximum": 3}, ["1", "2"]),
    ({"minimum": -2, "maximum": 0}, ["-2", "-1", "0"]),
    ({"minimum": 0.5, "maximum": 2.5}, ["1", "2"]),
])
def test_small_integer_ranges_are_spelled_out(schema, values):
    assert integer_rule({"type": "integer", **schema}) == "(" + " | ".join(f'"{v}"' for v in values) + ")"


@pytest.mark.parametrize("kind, schema", [
    ("integer", {"minimum": 0, "maximum": 10**6}),     # too many values to spell out
    ("integer", {"maximum": 10}),                      # no lower bound
    ("number", {"minimum": -1, "maximum": 1}),         # negative bound
    ("number", {"minimum": 0, "maximum": 0.5}),        # fractional bound
    ("number", {"minimum": 0, "exclusiveMaximum": 1}),
])
def test_bounds_it_cannot_express_keep_the_plain_rule(kind, schema):
    rule = integer_rule if kind == "integer" else number_rule
    assert rule({"type": kind, **schema}) is None


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"p": {"type": "number", "minimum": 0, "maximum": 1}}, "required": ["p"]},
    {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}, "m": {"type": "number", "minimum": 0}}},
    {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 5}, "maxItems": 3},
    {"type": "integer", "minimum": 1, "maximum": 10},
    {"type": "object", "properties": {"x": {"type": "number", "minimum": -5, "maximum": 5}}},
])
def test_every_grammar_parses(schema):
    assert LlamaGrammar.from_string(json_schema_to_gbnf(schema), verbose=False) is not None
