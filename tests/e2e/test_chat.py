"""The chat playground in chromium: type, run, watch tokens arrive, stop, regenerate,
compare three models, a tool-call loop, a structured answer, XSS in model output, and
the local engine (streaming and the logprobs heat-map). Screenshots of each state go to
test-artifacts/<test>/."""
from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from apps.proxy.models import Run
from tests.e2e.chat_page import open_chat, use_schema_example
from tests.upstream import Reply, chat_chunks, tool_call_chunks

pytestmark = pytest.mark.django_db(transaction=True)
CHAT = "POST /v1/chat/completions"


def test_type_run_watch_tokens_stop_and_regenerate(page, login, owner, team, upstream, upstream_provider, shot):
    words = [f" word{i}" for i in range(60)]
    upstream.script(CHAT, Reply.stream(chat_chunks(["Streaming:", *words]), delay=0.08),
                    Reply.stream(chat_chunks(["A **fresh** answer."])))
    open_chat(page, login, owner, upstream_provider)
    page.fill("[name=system]", "You are terse.")
    page.fill("#draft", "Count for me")
    shot(page, "1-typed")
    page.keyboard.press("Control+Enter")
    stream = page.locator(".stream-text").first
    expect(stream).to_contain_text("word2")
    first = stream.inner_text()
    assert "word59" not in first  # mid-stream, not the whole answer at once
    # Tokens keep arriving: the text grows past what was first seen (frames are coalesced,
    # so one frame may carry several words; wait for growth rather than a fixed word).
    page.wait_for_function("n => document.querySelector('.stream-text').innerText.length > n", arg=len(first))
    shot(page, "2-streaming")
    page.click("[data-stop-button]")
    expect(page.locator("[data-run-button]")).to_be_visible()
    answer = page.locator(".msg-assistant .answer")
    expect(answer).to_contain_text("Streaming:")
    expect(page.locator(".msg-assistant .stats")).to_contain_text("Cancelled")
    shot(page, "3-stopped")
    run = Run.objects.get()
    assert run.status == "cancelled" and run.output_text.startswith("Streaming: word0") and "word59" not in run.output_text
    assert upstream.wait_for_disconnect()
    kept = answer.inner_text()
    assert kept.startswith("Streaming:") and "word59" not in kept

    page.locator(".msg-assistant").hover()
    page.click(".msg-assistant [data-regenerate]")
    expect(page.locator(".msg-assistant .answer strong")).to_have_text("fresh")
    expect(page.locator(".msg-assistant")).to_have_count(1)
    shot(page, "4-regenerated")
    sent = upstream.requests_to("/v1/chat/completions")[1].json["messages"]
    assert sent == [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Count for me"}]
    # A reload shows the conversation as it is.
    page.reload()
    expect(page.locator(".msg-assistant .answer strong")).to_have_text("fresh")
    expect(page.locator(".msg-user textarea")).to_have_value("Count for me")
    assert not page.js_errors


def test_compare_three_models_and_continue_with_one(page, login, owner, team, upstream, upstream_provider, shot):
    upstream.models = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-nano"]
    open_chat(page, login, owner, upstream_provider)
    page.click("summary:has-text('Compare')")
    page.click("[data-add-column]")
    page.click("[data-add-column]")
    rows = page.locator("[data-column-row] select")
    rows.nth(0).select_option(f"{upstream_provider.pk}:gpt-4o")
    rows.nth(1).select_option(f"{upstream_provider.pk}:gpt-4.1-nano")
    page.fill("#draft", "Name a colour")
    page.click("[data-run-button]")
    expect(page.locator(".compare-col [data-pick]")).to_have_count(3)
    expect(page.locator(".compare-col .stats")).to_have_count(3)
    shot(page, "1-three-columns")
    runs = list(Run.objects.order_by("id"))
    assert [r.model for r in runs] == ["gpt-4o-mini", "gpt-4o", "gpt-4.1-nano"] and len({r.group for r in runs}) == 1
    page.locator(".compare-col [data-pick]").nth(1).click()
    expect(page.locator(".msg-compare")).to_have_count(0)
    expect(page.locator(".msg-assistant .answer")).to_contain_text("Echo:")
    shot(page, "2-picked")
    assert not page.js_errors


def test_tool_call_loop(page, login, owner, team, upstream, upstream_provider, shot):
    upstream.script(CHAT, Reply.stream(tool_call_chunks("get_weather", '{"city": "Oslo"}', call_id="call_7")),
                    Reply.stream(chat_chunks(["It is ", "12°C in Oslo."])))
    open_chat(page, login, owner, upstream_provider)
    page.click("summary:has-text('Tools')")
    page.click("[data-example='#p-tools']")
    expect(page.locator("#tools-check")).to_contain_text("1 function: get_weather")
    page.fill("#draft", "Weather in Oslo?")
    page.click("[data-run-button]")
    card = page.locator("[data-tool-call='call_7']")
    expect(card).to_contain_text("get_weather")
    expect(card).to_contain_text('"city": "Oslo"')
    result = page.locator(".msg-tool textarea")
    expect(result).to_be_visible()
    shot(page, "1-tool-call")
    result.fill("not json")
    page.click("[data-run-button]")
    expect(page.locator("#chat-errors")).to_contain_text("is not valid JSON")
    result.fill('{"celsius": 12}')
    page.click("[data-run-button]")
    expect(page.locator(".msg-assistant .answer").last).to_contain_text("12°C in Oslo")
    shot(page, "2-continued")
    sent = upstream.requests_to("/v1/chat/completions")[1].json["messages"]
    assert sent[-1] == {"role": "tool", "tool_call_id": "call_7", "content": '{"celsius": 12}'}
    assert not page.js_errors


def test_json_schema_answer_validates(page, login, owner, team, upstream, upstream_provider, shot):
    upstream.script(CHAT, Reply.stream(chat_chunks(['{"answer": "Paris",', ' "confidence": 0.97}'])))
    open_chat(page, login, owner, upstream_provider)
    use_schema_example(page)
    page.fill("#draft", "Capital of France?")
    page.click("[data-run-button]")
    expect(page.locator("[data-structured]")).to_contain_text("matches the schema")
    expect(page.locator("[data-structured] pre")).to_contain_text('"confidence": 0.97')
    shot(page, "1-structured")
    assert upstream.requests_to("/v1/chat/completions")[0].json["response_format"]["type"] == "json_schema"


def test_xss_in_model_output_is_inert(page, login, owner, team, upstream, upstream_provider, shot):
    payload = ["<script>window.__xss=1</script>", " <img src=x onerror=\"window.__xss=2\">", " [click](javascript:window.__xss=3)"]
    upstream.script(CHAT, Reply.stream(chat_chunks(payload), delay=0.05))
    open_chat(page, login, owner, upstream_provider)
    page.fill("#draft", "Say something nasty")
    page.click("[data-run-button]")
    expect(page.locator(".msg-assistant .stats")).to_be_visible()
    expect(page.locator(".msg-assistant .answer")).to_contain_text("<script>window.__xss=1</script>")
    page.locator(".msg-assistant .answer").click()
    shot(page, "1-inert")
    assert page.evaluate("window.__xss") is None
    assert page.locator(".msg-assistant img, .msg-assistant script, .msg-assistant a[href^='javascript']").count() == 0


@pytest.mark.slow
def test_local_engine_streams_with_a_logprobs_heat_map(page, login, owner, team, shot):
    from apps.proxy.models import Provider

    local = Provider.objects.get(team=team, kind="local")
    open_chat(page, login, owner, local, model="smollm2-135m-instruct")
    page.check("#p-logprobs")
    page.fill("#p-top_logprobs", "3")
    page.fill("#p-max_tokens", "24")
    page.fill("#draft", "Name three colours.")
    page.click("[data-run-button]")
    expect(page.locator(".stream-text").first).not_to_be_empty(timeout=180_000)  # the local model on a busy CPU
    shot(page, "1-streaming")
    expect(page.locator("[data-run-button]")).to_be_visible(timeout=240_000)
    page.click("[data-lp-toggle]")
    tokens = page.locator(".lp-map .lp")
    expect(tokens.first).to_be_visible()
    tokens.nth(1).hover()
    assert "%" in tokens.nth(1).get_attribute("data-tip")
    shot(page, "2-heat-map")
    run = Run.objects.get()
    assert run.status == "succeeded" and run.output["choices"][0]["logprobs"]
    assert json.loads(json.dumps(run.params))["logprobs"] is True


def test_attach_an_image_and_send_it_to_a_vision_model(page, login, owner, team, upstream, upstream_provider, shot, tmp_path):
    from tests.upstream import png_bytes

    image = tmp_path / "dot.png"
    image.write_bytes(png_bytes(8, 8))
    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")
    upstream.models = ["gpt-4o", "gpt-3.5-turbo"]
    open_chat(page, login, owner, upstream_provider, model="gpt-4o")
    page.set_input_files("[data-attach-input]", str(not_image))
    expect(page.locator("#chat-errors")).to_contain_text("notes.txt is not an image")
    page.set_input_files("[data-attach-input]", str(image))
    expect(page.locator("#composer-input .thumb img")).to_be_visible()
    page.fill("#draft", "What colour is this?")
    shot(page, "1-attached")
    page.click("[data-run-button]")
    expect(page.locator(".msg-assistant .stats")).to_be_visible()
    expect(page.locator(".msg-user .thumb img")).to_be_visible()
    content = upstream.requests_to("/v1/chat/completions")[0].json["messages"][0]["content"]
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    # A model without vision: the image option is disabled and a run is refused with the reason.
    page.select_option("[data-model-picker]", f"{upstream_provider.pk}:gpt-3.5-turbo")
    expect(page.locator("label[data-needs=vision]")).to_have_attribute("title", "gpt-3.5-turbo does not accept images")
    page.fill("#draft", "And now?")
    page.click("[data-run-button]")
    expect(page.locator("#chat-errors")).to_contain_text("gpt-3.5-turbo does not accept images")
    shot(page, "2-refused")
    assert len(upstream.requests_to("/v1/chat/completions")) == 1
