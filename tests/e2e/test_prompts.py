"""The prompts library in chromium: save a prompt, edit it into three versions, diff them,
fill variables and watch the preview, share a version and open it logged out (then revoke),
and present it full screen against the local engine. Screenshots in test-artifacts/<test>/."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.prompts.models import Prompt, ShareLink
from apps.proxy.models import Provider, Run

pytestmark = pytest.mark.django_db(transaction=True)


def _new_prompt(page, team):
    local = Provider.objects.get(team=team, kind="local")
    page.goto("/prompts/")
    expect(page.locator(".empty")).to_contain_text("No saved prompts yet")
    page.click("text=+ New prompt >> nth=0")
    page.fill("#f-name", "Support reply")
    page.fill("#f-tags", "support, email")
    page.fill("#f-folder", "support")
    page.fill("[name=system]", "You are a friendly support agent for {{company}}.")
    page.locator("[data-edit-message] textarea").first.fill("Write a short reply to {{customer}} about: {{issue}}")
    page.select_option("[data-model-picker]", f"{local.pk}:smollm2-135m-instruct")
    page.fill("#f-temperature", "0.7")
    expect(page.locator("#pr-detected")).to_contain_text("Variables: company customer issue")
    return local


def test_save_edit_three_versions_diff_and_preview(page, login, owner, team, shot):
    login(page, owner)
    _new_prompt(page, team)
    page.fill("#f-commit", "First draft")
    shot(page, "1-new-prompt")
    page.click("[data-save-version]")
    expect(page.locator("h1")).to_have_text("Support reply")
    expect(page.locator(".pr-versions li")).to_have_count(1)

    # v2: edit the system message and a parameter
    page.click("[data-edit-version]")
    page.fill("[name=system]", "You are a friendly, concise support agent for {{company}}.")
    page.fill("#f-max_tokens", "60")
    page.fill("#f-commit", "More concise")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".pr-versions li")).to_have_count(2)

    # v3: add a few-shot example
    page.click("[data-edit-version]")
    page.click("[data-add-edit-message]")
    page.locator("[data-edit-message] textarea").last.fill("Hi! Sorry about that, we are on it.")
    page.fill("#f-temperature", "0.3")
    page.fill("#f-commit", "Add an example answer")
    page.click("[data-save-version]")
    expect(page.locator(".pr-versions li")).to_have_count(3)
    assert [v.number for v in Prompt.objects.get().versions.all()] == [3, 2, 1]

    # variables: inputs for each, a live preview naming what is missing, then complete
    expect(page.locator("[data-var]")).to_have_count(3)
    page.fill("#var-company", "Acme Rockets")
    expect(page.locator("[data-preview-missing]")).to_contain_text("customer")
    page.fill("#var-customer", "Dana")
    page.fill("#var-issue", "a late delivery")
    expect(page.locator("[data-preview-missing]")).to_have_count(0)
    expect(page.locator("#preview .var-filled").first).to_have_text("Acme Rockets")
    expect(page.locator("#preview")).to_contain_text("ready to run")
    tokens = page.locator("[data-preview-tokens]").inner_text()
    assert tokens.split()[0].isdigit() and int(tokens.split()[0]) > 20
    page.click("[data-view-code]")
    expect(page.locator("#code")).to_contain_text("Write a short reply to Dana about: a late delivery")
    expect(page.locator("#code")).to_contain_text("PLAYGROUND_API_KEY")
    shot(page, "2-three-versions-preview")

    # a broken placeholder is named with its line
    # diff v1 -> v3 from the history
    page.locator(".pr-versions li[data-version='1'] input[name=a]").check()
    page.locator(".pr-versions li[data-version='3'] input[name=b]").check()
    page.click("[data-compare]")
    expect(page.locator("h1")).to_have_text("Compare v1 → v3")
    expect(page.locator("[data-diff-section='Messages'] ins").first).to_be_visible()
    expect(page.locator("[data-diff-section='Parameters']")).to_contain_text("max_tokens")
    shot(page, "3-diff")
    page.emulate_media(color_scheme="dark")
    shot(page, "3b-diff-dark")
    page.emulate_media(color_scheme="light")
    page.goto("/prompts/")
    expect(page.locator("[data-prompt]")).to_have_count(1)
    expect(page.locator("[data-prompt]")).to_contain_text("3")
    shot(page, "4-library")
    assert not page.js_errors


def test_open_in_playground_and_save_a_new_version_from_chat(page, login, owner, team, shot):
    login(page, owner)
    local = _new_prompt(page, team)
    page.click("[data-save-version]")
    page.click("[data-open-playground]")
    expect(page.locator("[data-ws-state]")).to_have_text("live")
    expect(page.locator("[name=system]")).to_have_value("You are a friendly support agent for {{company}}.")
    expect(page.locator(".msg-user textarea")).to_have_value("Write a short reply to {{customer}} about: {{issue}}")
    expect(page.locator("[data-model-picker]")).to_have_value(f"{local.pk}:smollm2-135m-instruct")
    expect(page.locator("#p-temperature")).to_have_value("0.7")
    page.fill("[name=system]", "You are a warm support agent for {{company}}.")
    page.once("dialog", lambda dialog: dialog.accept("Warmer tone"))
    page.click("[data-save-version]")
    expect(page.locator("#dialog-body")).to_contain_text("v2")
    shot(page, "1-saved-from-chat")
    v2 = Prompt.objects.get().versions.get(number=2)
    assert v2.commit_message == "Warmer tone" and v2.messages[0]["content"] == "You are a warm support agent for {{company}}."
    assert not page.js_errors


def test_broken_placeholder_and_labels(page, login, owner, team, shot):
    login(page, owner)
    _new_prompt(page, team)
    page.locator("[data-edit-message] textarea").first.fill("Line one\nReply to {{customer about the delay")
    page.click("[data-save-version]")
    expect(page.locator("[data-preview-error]")).to_contain_text("message 2 (user) line 2: '{{' is never closed")
    page.fill("input[name=label]", "production")
    page.click("[data-set-label]")
    expect(page.locator(".pr-version .pr-label-production")).to_be_visible()
    shot(page, "1-broken-and-labelled")
    assert not page.js_errors


def test_share_link_works_logged_out_and_stops_after_revoke(page, browser, live_asgi, login, owner, team, shot):
    login(page, owner)
    _new_prompt(page, team)
    page.click("[data-save-version]")
    page.click("[data-share]")
    expect(page.locator("[data-share-link]")).to_have_count(1)
    url = page.locator("[data-share-url]").get_attribute("href")
    shot(page, "1-shared")

    stranger = browser.new_context(base_url=live_asgi.url, viewport={"width": 1200, "height": 800})
    public = stranger.new_page()
    response = public.goto(url)
    assert response.status == 200
    expect(public.locator("[data-shared-title]")).to_contain_text("Support reply")
    expect(public.locator("body")).to_contain_text("You are a friendly support agent for {{company}}.")
    assert public.locator(".sidebar").count() == 0
    shot(public, "2-public-view")

    page.click("[data-revoke]")
    expect(page.locator("[data-share-link] .badge")).to_have_text("revoked")
    response = public.goto(url)
    assert response.status == 410
    expect(public.locator("[data-share-gone]")).to_contain_text("no longer available")
    shot(public, "3-revoked")
    stranger.close()
    assert ShareLink.objects.get().revoked_at is not None


@pytest.mark.slow
def test_presentation_mode_runs_on_the_local_engine(page, login, owner, team, shot):
    login(page, owner)
    _new_prompt(page, team)
    page.fill("[name=system]", "You are a helpful assistant. Answer in one short sentence.")
    page.locator("[data-edit-message] textarea").first.fill("What colour is the sky on a clear day? Answer about {{place}}.")
    page.fill("#f-max_tokens", "24")
    page.click("[data-save-version]")
    page.fill("#var-place", "Norway")
    page.click("[data-present]")
    expect(page.locator("[data-ws-state]")).to_have_text("live")
    expect(page.locator(".msg-user textarea")).to_have_value("What colour is the sky on a clear day? Answer about Norway.")
    # only the conversation and the Run button: no sidebar, no parameters, no editing controls
    assert page.locator(".sidebar, .chat-params, [data-add-message]").count() == 0
    expect(page.locator(".msg-actions").first).to_be_hidden()
    shot(page, "1-present", full_page=False)
    page.click("[data-run-button]")
    expect(page.locator(".stream-text").first).not_to_be_empty(timeout=60_000)
    shot(page, "2-streaming", full_page=False)
    expect(page.locator("[data-run-button]")).to_be_visible(timeout=90_000)
    expect(page.locator(".msg-assistant .stats")).to_be_visible()
    shot(page, "3-answered", full_page=False)
    run = Run.objects.get()
    assert run.status == "succeeded" and run.model == "smollm2-135m-instruct" and run.output_text
    assert run.prompt_version == Prompt.objects.get().versions.get()  # recorded against the presented version
    page.keyboard.press("Escape")
    expect(page.locator("h1")).to_have_text("Support reply")
    assert not page.js_errors


def test_export_then_import_shows_errors_with_field_and_line(page, login, owner, team, shot, tmp_path):
    import json

    login(page, owner)
    _new_prompt(page, team)
    page.click("[data-save-version]")
    with page.expect_download() as download:
        page.click("text=Export")
    data = json.loads(open(download.value.path()).read())
    assert data["format"] == 1 and data["versions"][0]["messages"][1]["content"].startswith("Write a short reply")
    data["versions"][0]["messages"][1]["role"] = "robot"
    bad = tmp_path / "bad.prompt.json"
    bad.write_text(json.dumps(data, indent=2))
    page.goto("/prompts/import/")
    page.set_input_files("#f-file", str(bad))
    page.click("text=Import >> nth=-1")
    expect(page.locator("[data-import-error]")).to_contain_text("versions[0].messages[1].role (line")
    expect(page.locator("[data-import-error]")).to_contain_text("expected one of system/user/assistant/tool, got 'robot'")
    shot(page, "1-import-error")
    data["versions"][0]["messages"][1]["role"] = "user"
    data["prompt"]["name"] = "Support reply (imported)"
    bad.write_text(json.dumps(data))
    page.set_input_files("#f-file", str(bad))
    page.click("text=Import >> nth=-1")
    expect(page.locator("h1")).to_have_text("Support reply (imported)")
    assert Prompt.objects.count() == 2
    assert not page.js_errors
