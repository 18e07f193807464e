"""The validator against a table of good and bad files: each bad one names its line and fault."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from apps.finetunes.validation import validate_jsonl


def chat(user: str = "What is 2+2?", answer: str = "4", **extra) -> dict:
    return {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": user},
                         {"role": "assistant", "content": answer}], **extra}


def pref(prompt: str = "Capital of France?", good: str = "Paris.", bad: str = "London.") -> dict:
    return {"input": {"messages": [{"role": "user", "content": prompt}]},
            "preferred_output": [{"role": "assistant", "content": good}],
            "non_preferred_output": [{"role": "assistant", "content": bad}]}


def jsonl(*rows) -> list[bytes]:
    return [(r if isinstance(r, str) else json.dumps(r)).encode() + b"\n" for r in rows]


TEN = [chat(f"Question {i}?", f"Answer {i}.") for i in range(10)]
IMAGE = {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]},
                      {"role": "assistant", "content": "A cat."}]}
TOOLS = {"messages": [{"role": "user", "content": "Weather in Paris?"},
                      {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}}]},
                      {"role": "tool", "tool_call_id": "c1", "content": "18C"},
                      {"role": "assistant", "content": "18C and sunny.", "weight": 1}],
         "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]}

CASES = [
    # (id, rows, model, expected examples, expected error fragments [(line, fragment)])
    ("good chat", TEN, "gpt-4o-mini-2024-07-18", 10, []),
    ("good with tools and weights", [TOOLS] * 10, "gpt-4o-mini-2024-07-18", 10, []),
    ("good preference", [pref()] * 10, "gpt-4o-mini-2024-07-18", 10, []),
    ("image in a vision model", [IMAGE] * 10, "gpt-4o-2024-08-06", 10, []),
    ("broken line 7", TEN[:6] + ['{"messages": [{"role": "user", "content": "hi"}'] + TEN[6:], "gpt-4o-mini", 10, [(7, "not valid JSON")]),
    ("0 examples", [], "gpt-4o-mini", 0, [(None, "no examples")]),
    ("only blank lines", ["", "  "], "gpt-4o-mini", 0, [(None, "no examples")]),
    ("no assistant message", TEN[:2] + [{"messages": [{"role": "user", "content": "hi"}]}], "gpt-4o-mini", 2, [(3, "no assistant message")]),
    ("ends with user", [{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]}], "gpt-4o-mini", 0, [(1, "must end with an assistant message")]),
    ("image in a text-only model", [IMAGE], "gpt-4o-mini-2024-07-18", 0, [(1, "does not take images")]),
    ("bad role", [{"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}], "gpt-4o-mini", 0, [(1, "role 'robot'")]),
    ("empty content", [chat(answer="")], "gpt-4o-mini", 0, [(1, "empty content")]),
    ("unknown top key", [chat(extra_field=1)], "gpt-4o-mini", 0, [(1, "unknown key 'extra_field'")]),
    ("unknown message key", [{"messages": [{"role": "user", "content": "a", "mood": "x"}, {"role": "assistant", "content": "b"}]}], "gpt-4o-mini", 0, [(1, "unknown key 'mood'")]),
    ("weight on user", [{"messages": [{"role": "user", "content": "a", "weight": 1}, {"role": "assistant", "content": "b"}]}], "gpt-4o-mini", 0, [(1, "only allowed on assistant")]),
    ("weight 2", [{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 2}]}], "gpt-4o-mini", 0, [(1, "must be 0 or 1")]),
    ("not an object", ["[1, 2]"], "gpt-4o-mini", 0, [(1, "not an object")]),
    ("no messages", [{"prompt": "x", "completion": "y"}], "gpt-4o-mini", 0, [(1, "no \"messages\" list")]),
    ("mixed formats", [chat(), pref()], "gpt-4o-mini", 1, [(2, "one format per file")]),
    ("preference with two outputs", [{**pref(), "preferred_output": [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]}], "gpt-4o-mini", 0, [(1, "exactly one assistant message")]),
    ("preference identical", [pref(good="Same", bad="Same")], "gpt-4o-mini", 0, [(1, "are the same")]),
    ("bad tool", [chat(tools=[{"type": "function"}])], "gpt-4o-mini", 0, [(1, "tool 1 must be")]),
    ("not utf-8", [b"\xff\xfe{}\n"], "gpt-4o-mini", 0, [(1, "UTF-8")]),
]


@pytest.mark.parametrize("name,rows,model,examples,errors", CASES, ids=[c[0] for c in CASES])
def test_validator_table(name, rows, model, examples, errors):
    lines = [r if isinstance(r, bytes) else l for r in rows for l in ([r] if isinstance(r, bytes) else jsonl(r))]
    report = validate_jsonl(lines, model=model)
    assert report.examples == examples
    assert report.ok is (not errors)
    for line, fragment in errors:
        matching = [e for e in report.errors if e.line == line and fragment in e.message]
        assert matching, f"expected an error on line {line} containing {fragment!r}, got {[str(e) for e in report.errors]}"
    if not errors:
        assert report.errors == []


def test_error_text_names_the_line():
    rows = jsonl(*TEN[:6]) + [b'{"messages": [\n'] + jsonl(*TEN[6:])
    report = validate_jsonl(rows, model="gpt-4o-mini")
    assert len(report.errors) == 1
    assert str(report.errors[0]).startswith("Line 7: is not valid JSON")


def test_tokens_counted_and_cost_estimated():
    report = validate_jsonl(jsonl(*TEN), model="gpt-4o-mini-2024-07-18")
    assert len(report.tokens) == 10 and all(t > 10 for t in report.tokens)
    estimate = report.estimate(epochs=3)
    assert estimate["training_tokens"] == 3 * report.total_tokens
    assert estimate["price_per_million"] == Decimal("3.00")
    assert estimate["cost"] == (Decimal("3.00") * estimate["training_tokens"] / 1_000_000).quantize(Decimal("0.0001"))
    auto = report.estimate()
    assert auto["epochs"] == 10  # 10 examples x 10 epochs reaches OpenAI's 100-example minimum


def test_examples_over_the_context_limit_are_flagged():
    long = chat(answer="word " * 700)  # ~700 tokens, over the local base's 512
    report = validate_jsonl(jsonl(chat(), long), model="SmolLM2-135M-Instruct")
    assert report.ok
    assert [line for line, _ in report.over_limit] == [2]
    assert any(w.line == 2 and "truncated" in w.message for w in report.warnings)
    assert report.billed_tokens_per_epoch == report.tokens[0] + 512
    assert report.estimate(epochs=1)["cost"] == Decimal("0")


def test_few_examples_warn_for_openai():
    report = validate_jsonl(jsonl(chat()), model="gpt-4o-mini")
    assert report.ok
    assert any("at least 10" in w.message for w in report.warnings)


def test_report_round_trips_through_json():
    report = validate_jsonl(jsonl(*TEN[:3], "oops"), model="gpt-4o-mini")
    again = type(report).from_dict(json.loads(json.dumps(report.as_dict())))
    assert again.examples == 3 and again.error_count == 1 and again.errors[0].line == 4
    assert again.tokens == report.tokens
