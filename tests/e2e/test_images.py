"""The images page in chromium against the test upstream: generate, edit with a mask
painted on the canvas, variations; all three in the gallery after a reload. And the page
with only the local engine. Screenshots go to test-artifacts/<test>/."""
from __future__ import annotations

import struct
import zlib
from dataclasses import replace

import pytest
from playwright.sync_api import expect

from apps.images.imagefile import inspect
from apps.images.models import Generation
from apps.proxy.models import Run
from tests.upstream import Reply, gradient_png, image_reply

pytestmark = pytest.mark.django_db(transaction=True)


def png_alpha(content: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of alpha values) of an 8-bit RGBA PNG, as a browser writes it."""
    width, height, depth, color_type = struct.unpack(">IIBB", content[16:26])
    assert (depth, color_type) == (8, 6), "expected an 8-bit RGBA PNG"
    pos, data = 8, b""
    while pos < len(content):
        length, kind = struct.unpack(">I4s", content[pos:pos + 8])
        if kind == b"IDAT":
            data += content[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw, stride, rows, prev = zlib.decompress(data), width * 4, [], bytearray(width * 4)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - 4] if i >= 4 else 0
            b = prev[i]
            c = prev[i - 4] if i >= 4 else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line[3::4]))
        prev = line
    return width, height, rows


@pytest.fixture
def image_upstream(team, upstream, upstream_provider):
    team.providers.filter(kind="local").update(enabled=False)
    upstream.models = ["gpt-4o-mini", "dall-e-2", "dall-e-3", "gpt-image-1"]
    return upstream_provider


def test_generate_edit_with_a_painted_mask_and_variations_survive_a_reload(page, login, owner, team, upstream, image_upstream, shot, tmp_path):
    key = lambda model: f"{image_upstream.pk}:{model}"  # noqa: E731
    photo = tmp_path / "harbour.png"
    photo.write_bytes(gradient_png(256, 256, seed=1))
    login(page, owner)

    # -- generate: options follow the model, with the reason when one is off
    page.goto("/images/")
    expect(page.locator(".img-tabs a.active")).to_have_text("Generate")
    expect(page.locator("[data-model-note]")).not_to_be_empty()
    page.select_option("[data-model-picker]", key("dall-e-2"))
    expect(page.locator("#quality")).to_be_disabled()
    expect(page.locator('[data-reason-for="quality"]')).to_have_text("dall-e-2 has no quality setting.")
    page.select_option("[data-model-picker]", key("dall-e-3"))
    expect(page.locator("#style")).to_be_enabled()
    expect(page.locator('[data-reason-for="n"]')).to_have_text("dall-e-3 makes one image per request.")
    page.select_option("[data-model-picker]", key("gpt-image-1"))
    expect(page.locator("#background")).to_be_enabled()
    expect(page.locator("#style")).to_be_disabled()
    page.select_option("#size", "1024x1024")
    page.select_option("#quality", "low")
    page.fill("#n", "2")
    page.fill("#prompt", "A watercolor lighthouse on a cliff at dawn, soft pastel light")
    upstream.script("POST /v1/images/generations", replace(image_reply(2, width=256, height=256), first_delay=0.6))
    shot(page, "1-generate-form")
    page.locator("#prompt").press("Control+Enter")
    expect(page.locator("#img-progress")).to_be_visible()
    expect(page.locator("[data-progress-text]")).to_contain_text("Generating 2 images")
    shot(page, "2-generating", full_page=False)
    card = page.locator(".gen-card").first
    expect(card.locator(".gen-img img")).to_have_count(2)
    expect(card).to_contain_text("gpt-image-1")
    expect(card).to_contain_text("quality low")
    expect(page.locator("#gallery-count")).to_have_text("1 request")
    sent = upstream.requests_to("/v1/images/generations")[0].json
    assert sent["model"] == "gpt-image-1" and sent["n"] == 2 and sent["quality"] == "low" and "response_format" not in sent
    page.wait_for_function("() => [...document.querySelectorAll('.gen-img img')].every(i => i.complete && i.naturalWidth === 256)")
    shot(page, "3-generated")

    # -- edit: paint a mask on the canvas over the image
    page.click(".img-tabs >> text=Edit")
    page.select_option("[data-model-picker]", key("dall-e-2"))
    page.set_input_files("[data-image-input]", str(photo))
    expect(page.locator("[data-mask-editor]")).to_have_attribute("data-ready", "true")
    box = page.locator("[data-mask-canvas]").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 40, cy - 10)
    page.mouse.down()
    for step in range(9):
        page.mouse.move(cx - 40 + step * 10, cy - 10 + (step % 3) * 10)
    page.mouse.up()
    expect(page.locator("[data-mask-status]")).to_contain_text("Painted mask, 256×256")
    page.fill("#prompt", "A red hot-air balloon in the sky")
    upstream.script("POST /v1/images/edits", replace(image_reply(1, width=256, height=256), first_delay=0.3))
    page.select_option("#size", "512x512")
    shot(page, "4-mask-painted")
    page.click("[data-run-button]")
    expect(page.locator(".gen-card").first).to_contain_text("A red hot-air balloon")
    expect(page.locator(".gen-card").first.locator(".gen-img img")).to_have_count(1)
    received = upstream.requests_to("/v1/images/edits")[0].multipart
    assert received["image"][1] == gradient_png(256, 256, seed=1) and received["prompt"] == "A red hot-air balloon in the sky"
    mask_name, mask, mask_type = received["mask"]
    info = inspect(mask)
    assert (mask_name, mask_type, info.size, info.has_alpha) == ("mask.png", "image/png", "256x256", True)
    width, height, alpha = png_alpha(mask)
    assert alpha[height // 2][width // 2] == 0  # painted: the area to edit is transparent
    assert alpha[5][5] == 255 and alpha[height - 5][width - 5] == 255  # untouched corners stay opaque
    shot(page, "5-edited")

    # -- variations
    page.click(".img-tabs >> text=Variations")
    page.set_input_files("[data-image-input]", str(photo))
    expect(page.locator(".upload-preview")).to_be_visible()
    page.fill("#n", "3")
    upstream.script("POST /v1/images/variations", image_reply(3, width=256, height=256))
    page.click("[data-run-button]")
    expect(page.locator(".gen-card").first.locator(".gen-img img")).to_have_count(3)
    assert upstream.requests_to("/v1/images/variations")[0].multipart["n"] == "3"

    # -- all three survive a reload, newest first, with their numbers
    page.reload()
    cards = page.locator(".gen-card")
    expect(cards).to_have_count(3)
    expect(cards.nth(0)).to_contain_text("Variation")
    expect(cards.nth(1)).to_contain_text("A red hot-air balloon")
    expect(cards.nth(2)).to_contain_text("A watercolor lighthouse")
    expect(cards.nth(1).locator(".gen-inputs")).to_contain_text("harbour.png")
    expect(cards.nth(1).locator(".stats")).to_contain_text("$0.018")
    page.wait_for_function("() => [...document.querySelectorAll('.gen-img img')].every(i => i.complete && i.naturalWidth > 0)")
    shot(page, "6-gallery-after-reload")
    page.evaluate("document.documentElement.dataset.theme = 'dark'")
    shot(page, "6b-gallery-dark", full_page=False)
    page.evaluate("document.documentElement.dataset.theme = 'light'")
    assert Generation.objects.count() == 3 and Run.objects.filter(capability="image", status="succeeded").count() == 3

    # -- delete one variation; re-run prefills the form
    page.once("dialog", lambda dialog: dialog.accept())
    cards.nth(0).locator(".gen-img").first.hover()
    cards.nth(0).locator(".gen-img").first.locator("button:has-text('Delete')").click()
    expect(page.locator(".gen-card").first.locator(".gen-img img")).to_have_count(2)
    page.locator(".gen-card").nth(2).locator("[data-rerun]").click()
    expect(page.locator("#prompt")).to_have_value("A watercolor lighthouse on a cliff at dawn, soft pastel light")
    expect(page.locator("#quality")).to_have_value("low")
    assert not page.js_errors


def test_edit_a_gallery_image_with_a_painted_mask(page, login, owner, team, upstream, image_upstream, shot):
    upstream.script("POST /v1/images/generations", image_reply(1, width=256, height=256))
    login(page, owner)
    page.goto("/images/")
    page.fill("#prompt", "A quiet harbour")
    page.click("[data-run-button]")
    figure = page.locator(".gen-img").first
    expect(figure.locator("img")).to_be_visible()
    figure.hover()
    shot(page, "1-hover-actions", full_page=False)
    figure.locator("[data-edit-image]").click()
    expect(page.locator(".img-tabs a.active")).to_have_text("Edit")
    expect(page.locator("[data-mask-editor]")).to_have_attribute("data-ready", "true")
    box = page.locator("[data-mask-canvas]").bounding_box()
    page.mouse.move(box["x"] + 20, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    expect(page.locator("[data-mask-status]")).to_contain_text("Painted mask, 256×256")
    page.fill("#prompt", "Add a small sailing boat")
    page.click("[data-run-button]")
    expect(page.locator(".gen-card").first).to_contain_text("Add a small sailing boat")
    received = upstream.requests_to("/v1/images/edits")[0].multipart
    assert received["image"][1] == gradient_png(256, 256, seed=0)
    _, _, alpha = png_alpha(received["mask"][1])
    assert alpha[20][20] == 0 and alpha[250][10] == 255
    shot(page, "2-edited")
    assert not page.js_errors


def test_an_upstream_refusal_is_shown_in_the_form(page, login, owner, team, upstream, image_upstream, shot):
    upstream.script("POST /v1/images/generations", Reply.error(
        400, "Your request was rejected as a result of our safety system.", code="content_policy_violation"))
    login(page, owner)
    page.goto("/images/")
    page.fill("#prompt", "something the safety system refuses")
    page.click("[data-run-button]")
    expect(page.locator("#image-error .alert-error")).to_contain_text("rejected as a result of our safety system")
    expect(page.locator(".gen-card")).to_have_count(0)
    shot(page, "refused")
    assert not page.js_errors


def test_cancel_stops_a_slow_generation(page, login, owner, team, upstream, image_upstream, shot):
    upstream.script("POST /v1/images/generations", replace(image_reply(1), first_delay=6))
    login(page, owner)
    page.goto("/images/")
    page.fill("#prompt", "A very slow picture")
    page.click("[data-run-button]")
    expect(page.locator("[data-progress-text]")).to_contain_text("Generating 1 image")
    page.wait_for_function("() => document.querySelector('[data-progress-text]').textContent.includes('1 s')")
    page.click("[data-image-cancel]")
    expect(page.locator("#image-error .alert-warn")).to_contain_text("Cancelled")
    expect(page.locator("#img-progress")).to_be_hidden()
    expect(page.locator(".gen-card")).to_have_count(0)
    shot(page, "cancelled")
    assert Run.objects.get().status == "cancelled"
    assert not page.js_errors


def test_with_only_the_local_engine_the_page_points_to_provider_settings(page, login, owner, team, shot):
    login(page, owner)
    page.goto("/images/")
    notice = page.locator("#image-needs-provider")
    expect(notice).to_contain_text("Image generation needs an OpenAI or OpenAI-compatible provider")
    expect(page.locator("[data-run-button]")).to_be_disabled()
    shot(page, "local-only")
    notice.locator("a").click()
    page.wait_for_url("**/settings/providers/")
    assert not page.js_errors
