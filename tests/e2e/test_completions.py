"""The completions playground in chromium: type a prompt, Ctrl+Enter, watch the local base
model's completion stream in after the prompt in another colour, stop, read the numbers;
variables, the logprobs heat-map and a refused run. Screenshots go to test-artifacts/<test>/."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.proxy.models import Provider, Run
from tests.upstream import Reply, completion_chunks

pytestmark = pytest.mark.django_db(transaction=True)


def open_page(page, login, user, url="/completions/"):
    login(page, user)
    page.goto(url)
    expect(page.locator("[data-ws-state]")).to_have_text("live")


def test_local_base_model_streams_inline_then_stop_keeps_it_with_numbers(page, login, owner, team, shot):
    local = Provider.objects.get(team=team, kind="local")
    open_page(page, login, owner)
    expect(page.locator("[data-model-picker]")).to_have_value(f"{local.pk}:gemma-3-270m")
    page.fill("#cmp-prompt", "Once upon a time, in a small village by the sea,")
    page.fill("#p-max_tokens", "400")
    page.fill("#p-seed", "3")
    shot(page, "1-typed")
    page.locator("#cmp-prompt").press("Control+Enter")
    out = page.locator(".cmp-result.streaming .cmp-out")
    expect(out).not_to_be_empty(timeout=90_000)
    first = out.inner_text()
    page.wait_for_function("n => document.querySelector('.cmp-result.streaming .cmp-out').innerText.length > n", arg=len(first), timeout=60_000)
    # The prompt in the text colour, the completion highlighted after it.
    expect(page.locator(".cmp-result .cmp-prompt-text")).to_have_text("Once upon a time, in a small village by the sea,")
    colours = page.evaluate("""() => [getComputedStyle(document.querySelector('.cmp-result .cmp-prompt-text')).color,
                                     getComputedStyle(document.querySelector('.cmp-result .cmp-out')).color,
                                     getComputedStyle(document.querySelector('.cmp-result .cmp-out')).backgroundColor]""")
    assert colours[0] != colours[1] and colours[2] not in ("rgba(0, 0, 0, 0)", "transparent")
    shot(page, "2-streaming")
    page.click("[data-stop-button]")
    expect(page.locator("[data-run-button]")).to_be_visible(timeout=30_000)
    stats = page.locator(".cmp-result .stats")
    expect(stats).to_contain_text("Cancelled")
    expect(stats).to_contain_text("out")
    expect(stats).to_contain_text("TTFT")
    assert page.evaluate("() => document.querySelectorAll('#result').length") == 1
    assert page.evaluate("() => document.querySelector('#result').parentElement.matches('[data-editor]')")
    shot(page, "3-stopped")
    run = Run.objects.get()
    assert run.status == "cancelled" and run.output_text and run.capability == "completion"
    assert page.locator(".cmp-result .cmp-out").inner_text() == run.output_text
    # Keep & continue: the completion becomes part of the prompt, to run on from it.
    page.click("[data-keep]")
    expect(page.locator("#cmp-prompt")).to_have_value("Once upon a time, in a small village by the sea," + run.output_text)
    assert not page.js_errors


def test_variables_heat_map_and_refusals(page, login, owner, team, upstream, upstream_provider, shot):
    chunks = completion_chunks([" red", ",", " blue"])
    for chunk, lp in zip(chunks, [-0.05, -1.2, -0.4]):
        token = chunk["choices"][0]["text"]
        if token:
            chunk["choices"][0]["logprobs"] = {"tokens": [token], "token_logprobs": [lp], "top_logprobs": [{token: lp, " green": -2.5}], "text_offset": [0]}
    upstream.script("POST /v1/completions", Reply.stream(chunks))
    open_page(page, login, owner)
    page.select_option("[data-model-picker]", f"{upstream_provider.pk}:gpt-3.5-turbo-instruct")
    page.fill("#cmp-prompt", "The colours of the {{ thing }} are")
    expect(page.locator("[name=var_thing]")).to_be_visible()
    page.check("#p-logprobs")
    page.click("[data-run-button]")
    expect(page.locator("#chat-errors")).to_contain_text("no value for 'thing'")
    expect(page.locator("[name=var_thing]")).to_be_focused()
    shot(page, "1-missing-variable")
    page.fill("[name=var_thing]", "flag")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".cmp-result.done .cmp-out .lp")).to_have_count(3)
    expect(page.locator(".cmp-result .cmp-prompt-text")).to_have_text("The colours of the flag are")
    page.locator(".cmp-result .cmp-out .lp").nth(1).hover()
    assert "30.1%" in page.locator(".cmp-result .cmp-out .lp").nth(1).get_attribute("data-tip")
    shot(page, "2-heat-map")
    page.evaluate("document.documentElement.dataset.theme = 'dark'")
    shot(page, "2-heat-map-dark")
    page.evaluate("document.documentElement.dataset.theme = 'light'")
    assert upstream.requests_to("/v1/completions")[0].json["prompt"] == "The colours of the flag are"
    # Too long for the model's 4,096-token window: refused before sending, the field named.
    page.click("[data-edit-prompt]")
    page.fill("#cmp-prompt", "word " * 4100)
    expect(page.locator("#ctx-check")).to_contain_text("over the model's 4,096-token context window")
    page.click("[data-run-button]")
    expect(page.locator("#chat-errors")).to_contain_text("context window")
    shot(page, "3-over-the-window")
    # The local engine cannot insert: suffix is disabled with the reason.
    local = Provider.objects.get(team=team, kind="local")
    page.select_option("[data-model-picker]", f"{local.pk}:gemma-3-270m")
    expect(page.locator("#p-suffix")).to_be_disabled()
    expect(page.locator("[data-param=suffix] .reason")).to_contain_text("does not insert text")
    assert len(upstream.requests_to("/v1/completions")) == 1
    assert not page.js_errors


def test_view_code_save_as_prompt_and_open_the_version(page, login, owner, team, upstream, upstream_provider, shot):
    from apps.prompts.models import PromptVersion

    open_page(page, login, owner)
    page.select_option("[data-model-picker]", f"{upstream_provider.pk}:gpt-3.5-turbo-instruct")
    page.fill("#cmp-prompt", "Write a tagline for {{product}}:\n")
    page.fill("[name=var_product]", "a bakery")
    page.fill("#p-stop", "\\n")
    page.click("text=View code")
    expect(page.locator("#dialog-body")).to_contain_text("client.completions.create")
    expect(page.locator("#dialog-body")).to_contain_text("Write a tagline for a bakery:")
    shot(page, "1-code")
    page.click("[data-close-dialog]")
    page.once("dialog", lambda dialog: dialog.accept("Taglines"))
    page.click("text=Save as prompt")
    expect(page.locator("#dialog-body")).to_contain_text("Saved as Taglines v1")
    version = PromptVersion.objects.get()
    assert version.mode == "completion" and version.text == "Write a tagline for {{product}}:\n" and version.params["stop"] == ["\n"]
    page.goto(f"/completions/?version={version.pk}")
    expect(page.locator("#cmp-prompt")).to_have_value("Write a tagline for {{product}}:\n")
    expect(page.locator("[name=var_product]")).to_be_visible()
    expect(page.locator(".chat-title .badge")).to_have_text("Taglines · v1")
    shot(page, "2-opened-version")
    assert not page.js_errors
