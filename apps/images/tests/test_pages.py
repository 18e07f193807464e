"""The images page against the test upstream: the form, the gallery, downloads, roles."""
from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.images.models import GeneratedImage, Generation
from apps.proxy.models import Run
from tests.upstream import Reply, gradient_png, image_reply, png_rgba

pytestmark = pytest.mark.django_db(transaction=True)


def _key(provider, model="dall-e-2"):
    return f"{provider.pk}:{model}"


def _generate(client, provider, *, model="dall-e-2", htmx=False, **fields):
    data = {"operation": "generate", "model_key": _key(provider, model), "prompt": "A lighthouse at dawn", "size": "256x256", "n": 1, **fields}
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    return client.post(reverse("images:create"), data, **headers)


def test_page_offers_only_image_models_with_their_options(owner_client, only_upstream, image_models):
    page = owner_client.get(reverse("images:index")).content.decode()
    assert "$0.016-0.02 per image" in page  # what the first model costs, under the picker
    assert f'value="{_key(only_upstream)}"' in page and f'value="{_key(only_upstream, "gpt-image-1")}"' in page
    assert f'value="{_key(only_upstream, "gpt-4o-mini")}"' not in page
    assert "dall-e-2 has no quality setting." in page  # the first model: quality is off, with the reason
    assert "image-needs-provider" not in page
    edit = owner_client.get(reverse("images:index"), {"mode": "edit"}).content.decode()
    assert "data-mask-editor" in edit and f'value="{_key(only_upstream, "dall-e-3")}"' not in edit
    variation = owner_client.get(reverse("images:index"), {"mode": "variation"}).content.decode()
    assert f'value="{_key(only_upstream, "gpt-image-1")}"' not in variation and f'value="{_key(only_upstream)}"' in variation


def test_with_only_the_local_engine_the_page_says_what_to_add(owner_client, team):
    page = owner_client.get(reverse("images:index")).content.decode()
    assert "Image generation needs an OpenAI or OpenAI-compatible provider." in page
    assert 'href="/settings/providers/"' in page
    assert "disabled" in page.split("data-run-button type=\"submit\"", 1)[1][:20]


def test_generate_then_the_gallery_shows_it_with_prompt_parameters_and_numbers(owner_client, only_upstream, upstream):
    upstream.script("POST /v1/images/generations", image_reply(2, width=48, height=48))
    response = _generate(owner_client, only_upstream, n=2)
    assert response.status_code == 302
    generation = Generation.objects.get()
    page = owner_client.get(response["Location"]).content.decode()
    assert f'id="gen-{generation.pk}"' in page and "A lighthouse at dawn" in page
    assert "size 256x256" in page and "2 images" in page and "just now" in page
    for image in generation.images.all():
        assert reverse("images:image_file", args=[image.pk]) in page
        assert owner_client.get(reverse("images:image_file", args=[image.pk])).getvalue() == gradient_png(48, 48, seed=image.index)
    assert "$0.032" in page  # 2 x $0.016 (dall-e-2, 256x256)
    assert f"run #{generation.run_id}" in page


def test_htmx_generate_returns_the_new_card(owner_client, only_upstream, upstream):
    response = _generate(owner_client, only_upstream, htmx=True)
    body = response.content.decode()
    assert response.status_code == 200 and 'class="gen-card fresh"' in body and "A lighthouse at dawn" in body
    assert '<span id="gallery-count" hx-swap-oob="true">1 request</span>' in body
    assert 'id="image-error" hx-swap-oob="true"' in body  # clears an earlier error


def test_upstream_error_is_shown_in_the_form(owner_client, only_upstream, upstream):
    refusal = Reply.error(400, "Your request was rejected as a result of our safety system.", code="content_policy_violation")
    upstream.script("POST /v1/images/generations", refusal, refusal)
    response = _generate(owner_client, only_upstream, htmx=True)
    assert response["HX-Retarget"] == "#image-error"
    assert "rejected as a result of our safety system" in response.content.decode()
    plain = _generate(owner_client, only_upstream)
    assert plain.status_code == 400 and "safety system" in plain.content.decode()
    assert 'A lighthouse at dawn</textarea>' in plain.content.decode()  # the prompt is kept
    assert not Generation.objects.exists() and Run.objects.filter(status="failed").count() == 2


def test_a_provider_without_the_operation_is_a_clear_message(owner_client, team, upstream):
    local = team.providers.get(kind="local")
    response = owner_client.post(reverse("images:create"), {"operation": "generate", "model_key": f"{local.pk}:smollm2-135m-instruct",
                                                          "prompt": "a cat", "size": "256x256"})
    body = response.content.decode()
    assert response.status_code == 400 and "cannot do image generation" in body and "Settings -&gt; Providers" in body


def test_edit_upload_that_is_not_an_image_and_mask_of_wrong_size(owner_client, only_upstream, upstream):
    url = reverse("images:create")
    base = {"operation": "edit", "model_key": _key(only_upstream), "prompt": "add a moon", "size": "256x256", "n": 1}
    response = owner_client.post(url, {**base, "image": SimpleUploadedFile("notes.txt", b"just some text", "text/plain")})
    assert response.status_code == 400 and "notes.txt is not an image: upload a PNG, JPEG or WebP file." in response.content.decode()
    response = owner_client.post(url, {**base, "image": SimpleUploadedFile("photo.png", gradient_png(64, 64), "image/png"),
                                       "mask": SimpleUploadedFile("mask.png", png_rgba(40, 40, alpha=0), "image/png")})
    assert response.status_code == 400
    assert "The mask is 40x40 but the image is 64x64; they must be the same size." in response.content.decode()
    assert not upstream.requests_to("/v1/images/edits")


def test_rerun_prefills_the_form_and_reuses_the_stored_image(owner_client, only_upstream, upstream):
    url = reverse("images:create")
    mask = png_rgba(64, 64, alpha=0)
    owner_client.post(url, {"operation": "edit", "model_key": _key(only_upstream), "prompt": "add a moon", "size": "512x512", "n": 1,
                            "image": SimpleUploadedFile("photo.png", gradient_png(64, 64), "image/png"),
                            "mask": SimpleUploadedFile("mask.png", mask, "image/png")})
    generation = Generation.objects.get()
    page = owner_client.get(reverse("images:index"), {"rerun": generation.pk}).content.decode()
    assert "add a moon</textarea>" in page and 'value="512x512" selected' in page
    assert f'name="source_generation" value="{generation.pk}"' in page and 'name="reuse_mask"' in page
    owner_client.post(url, {"operation": "edit", "model_key": _key(only_upstream), "prompt": "add two moons", "size": "512x512",
                            "n": 1, "source_generation": generation.pk, "reuse_mask": "1"})
    again = upstream.requests_to("/v1/images/edits")[1].multipart
    assert again["prompt"] == "add two moons" and again["image"][1] == gradient_png(64, 64) and again["mask"][1] == mask
    assert Generation.objects.count() == 2


def test_download_uses_a_safe_name_and_refuses_a_path(owner_client, only_upstream, upstream):
    _generate(owner_client, only_upstream)
    image = GeneratedImage.objects.get()
    url = reverse("images:image_download", args=[image.pk])
    response = owner_client.get(url, {"name": "lighthouse"})
    assert response.status_code == 200 and 'filename="lighthouse.png"' in response["Content-Disposition"]
    assert response.getvalue() == image.file.open("rb").read()
    for name in ("../../etc/passwd", "..\\secret.png", "a/b.png"):
        refused = owner_client.get(url, {"name": name})
        assert refused.status_code == 400 and "contains a path" in refused.content.decode()


def test_viewer_sees_the_gallery_but_cannot_generate_or_delete(viewer_client, owner_client, only_upstream, upstream):
    _generate(owner_client, only_upstream)
    image = GeneratedImage.objects.get()
    page = viewer_client.get(reverse("images:index")).content.decode()
    assert "A lighthouse at dawn" in page and "Viewers can look at the gallery" in page
    assert _generate(viewer_client, only_upstream).status_code == 403
    assert viewer_client.post(reverse("images:image_delete", args=[image.pk])).status_code == 403
    assert viewer_client.post(reverse("images:generation_delete", args=[image.generation_id])).status_code == 403
    assert GeneratedImage.objects.count() == 1 and len(upstream.requests_to("/v1/images/generations")) == 1


def test_another_teams_image_is_404(outsider_client, owner_client, only_upstream, upstream):
    _generate(owner_client, only_upstream)
    image = GeneratedImage.objects.get()
    for name in ("images:image_file", "images:image_download"):
        assert outsider_client.get(reverse(name, args=[image.pk])).status_code == 404
    assert outsider_client.post(reverse("images:image_delete", args=[image.pk])).status_code == 404
    assert outsider_client.get(reverse("images:index"), {"rerun": image.generation_id}).status_code == 404
    assert GeneratedImage.objects.exists()


def test_editor_deletes_an_image(editor_client, owner_client, only_upstream, upstream):
    upstream.script("POST /v1/images/generations", image_reply(2, width=16, height=16))
    _generate(owner_client, only_upstream, n=2)
    first = GeneratedImage.objects.first()
    response = editor_client.post(reverse("images:image_delete", args=[first.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and f'id="img-{first.pk}"' not in response.content.decode()
    assert GeneratedImage.objects.count() == 1


def test_gallery_is_paged_newest_first(owner_client, only_upstream, upstream):
    for i in range(14):
        _generate(owner_client, only_upstream, prompt=f"picture number {i:02d}")
    first = owner_client.get(reverse("images:index")).content.decode()
    assert "picture number 13" in first and "picture number 02" in first and "picture number 01" not in first
    assert first.index("picture number 13") < first.index("picture number 12")
    second = owner_client.get(reverse("images:index"), {"page": 2}).content.decode()
    assert "picture number 01" in second and "picture number 00" in second and "picture number 13" not in second


def test_a_gallery_image_becomes_the_input_of_a_variation(owner_client, only_upstream, upstream):
    _generate(owner_client, only_upstream)
    image = GeneratedImage.objects.get()
    page = owner_client.get(reverse("images:index"), {"mode": "variation", "from_image": image.pk}).content.decode()
    assert f'name="source_image" value="{image.pk}"' in page and f"Using image #{image.pk} from the gallery" in page
    response = owner_client.post(reverse("images:create"), {"operation": "variation", "model_key": _key(only_upstream),
                                                          "size": "256x256", "n": 1, "source_image": image.pk})
    assert response.status_code == 302
    sent = upstream.requests_to("/v1/images/variations")[0].multipart["image"]
    assert sent[0] == f"image-{image.pk}.png" and sent[1] == image.file.open("rb").read()
    assert Generation.objects.filter(operation="variation").get().source_name == f"image-{image.pk}.png"


def test_another_teams_image_cannot_be_used_as_input(outsider_client, owner_client, only_upstream, upstream, other_team):
    _generate(owner_client, only_upstream)
    image = GeneratedImage.objects.get()
    assert outsider_client.get(reverse("images:index"), {"mode": "edit", "from_image": image.pk}).status_code == 404
    response = outsider_client.post(reverse("images:create"), {"operation": "variation", "model_key": "1:dall-e-2", "source_image": image.pk})
    assert response.status_code == 404 and not upstream.requests_to("/v1/images/variations")
