"""The chat page's acceptance in chromium against the local engine (SmolLM2 135M, no
network): a streamed answer stopped with its partial text kept, compare mode with three
columns, a tool-call loop, and a json_schema answer that validates. (test_chat.py covers
the same features against the scripted upstream, and the local logprobs heat-map.)
Screenshots go to test-artifacts/<test>/."""
from __future__ import annotations

import json

import jsonschema
import pytest
from playwright.sync_api import expect

from apps.chat.views import DEFAULT_SCHEMA_EXAMPLE
from apps.proxy.models import Provider, Run
from tests.e2e.chat_page import open_chat, use_schema_example

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "smollm2-135m-instruct"
SLOW = 240_000  # ms: the local model on a CPU that the rest of the suite may be using


def open_local_chat(page, login, user, team):
    local = Provider.objects.get(team=team, kind="local")
    open_chat(page, login, user, local, model=MODEL)
    page.fill("#p-temperature", "0")
    return local


def test_local_stream_stopped_keeps_its_partial_answer(page, login, owner, team, shot):
    open_local_chat(page, login, owner, team)
    page.fill("#p-max_tokens", "2000")
    page.fill("#draft", "Count from 1 to 1000, one number per line.")
    page.keyboard.press("Control+Enter")
    stream = page.locator(".stream-text").first
    page.wait_for_function("() => (document.querySelector('.stream-text')?.innerText || '').length > 20", timeout=SLOW)
    shot(page, "1-streaming")
    page.click("[data-stop-button]")
    expect(page.locator("[data-run-button]")).to_be_visible(timeout=SLOW)
    expect(page.locator(".msg-assistant .stats")).to_contain_text("Cancelled")
    shot(page, "2-stopped")
    run = Run.objects.get()
    assert run.status == "cancelled" and run.provider.kind == "local"
    assert len(run.output_text) > 20 and run.completion_tokens < 2000
    kept = page.locator(".msg-assistant .answer").inner_text()
    assert kept.strip() and kept.split()[0] in run.output_text
    assert stream.count() == 0 or not stream.is_visible()
    assert not page.js_errors


def test_local_compare_three_columns_by_temperature(page, login, owner, team, shot):
    local = open_local_chat(page, login, owner, team)
    page.fill("#p-max_tokens", "24")
    page.click("summary:has-text('Compare')")
    page.click("[data-add-column]")
    page.click("[data-add-column]")
    rows = page.locator("[data-column-row]")
    for i, temperature in enumerate(["0.7", "1.3"]):
        rows.nth(i).locator("select").select_option(f"{local.pk}:{MODEL}")
        rows.nth(i).locator("[name=col_temperature]").fill(temperature)
    page.fill("#draft", "Name a colour.")
    page.click("[data-run-button]")
    # One model, one generation at a time: the columns queue and then all finish.
    expect(page.locator(".compare-col .stats")).to_have_count(3, timeout=SLOW)
    shot(page, "1-three-columns")
    runs = list(Run.objects.order_by("id"))
    assert len(runs) == 3 and len({r.group for r in runs}) == 1
    assert all(r.status == "succeeded" and r.output_text.strip() for r in runs)
    assert sorted(r.params.get("temperature") for r in runs) == [0, 0.7, 1.3]
    page.locator(".compare-col [data-pick]").nth(2).click()
    expect(page.locator(".msg-compare")).to_have_count(0)
    expect(page.locator(".msg-assistant .answer")).not_to_be_empty()
    shot(page, "2-picked")
    assert not page.js_errors


def test_local_tool_call_loop_then_json_schema_answer(page, login, owner, team, shot):
    open_local_chat(page, login, owner, team)
    page.fill("#p-max_tokens", "80")
    page.click("summary:has-text('Tools')")
    page.click("[data-example='#p-tools']")
    expect(page.locator("#tools-check")).to_contain_text("1 function: get_weather")
    # SmolLM2 135M cannot decide alone whether to call a tool: the page does not offer
    # "auto" for it, and the engine constrains a "required" answer to a valid call.
    expect(page.locator("#p-tool_choice")).to_have_value("required")
    assert page.locator("#p-tool_choice option[value=auto]").is_disabled()
    page.fill("#draft", "What is the weather in Oslo?")
    page.click("[data-run-button]")
    card = page.locator("[data-tool-call]").first
    expect(card).to_contain_text("get_weather", timeout=SLOW)
    shot(page, "1-tool-call")
    call = Run.objects.get().output["choices"][0]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert isinstance(json.loads(call["function"]["arguments"])["city"], str)
    page.locator(".msg-tool textarea").fill('{"celsius": 12, "sky": "clear"}')
    page.select_option("#p-tool_choice", "none")  # now answer in words
    page.click("[data-run-button]")
    expect(page.locator(".msg-assistant .answer").last).not_to_be_empty(timeout=SLOW)
    expect(page.locator("[data-run-button]")).to_be_visible(timeout=SLOW)
    shot(page, "2-answered-after-the-tool")
    second = Run.objects.order_by("id").last()
    sent = second.input["messages"]
    assert sent[-1]["role"] == "tool" and sent[-1]["tool_call_id"] == call["id"]
    assert second.status == "succeeded" and second.output_text.strip()

    # A structured answer in the same conversation: the engine's grammar follows the schema.
    use_schema_example(page)
    page.fill("#draft", "Is it warm in Oslo? Answer with your confidence.")
    page.click("[data-run-button]")
    expect(page.locator("[data-structured]").last).to_contain_text("matches the schema", timeout=SLOW)
    shot(page, "3-structured")
    structured = Run.objects.order_by("id").last()
    jsonschema.validate(json.loads(structured.output_text), json.loads(DEFAULT_SCHEMA_EXAMPLE))
    assert not page.js_errors
