"""Image services against the test upstream (a real HTTP server): what is sent, what is
kept, and every refusal before anything is sent."""
from __future__ import annotations

from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.core.files.storage import default_storage

from apps.images import services
from apps.images.models import GeneratedImage, Generation
from apps.images.services import ImageInputError, ImageParams
from apps.proxy.errors import ProxyError
from apps.proxy.models import Provider, Run
from apps.proxy.providers.base import Upload
from tests.upstream import Reply, gradient_png, image_reply, png_bytes, png_rgba

pytestmark = pytest.mark.django_db(transaction=True)
create = async_to_sync(services.generation_create)


def _png(name="photo.png", size=64):
    return Upload(filename=name, content=gradient_png(size, size), content_type="image/png")


def test_generate_sends_the_request_and_stores_the_images_in_storage(team, owner, only_upstream, upstream):
    upstream.script("POST /v1/images/generations", image_reply(1, width=64, height=64, revised_prompt="A fox, in watercolor"))
    generation = create(team=team, user=owner, provider=only_upstream, model="dall-e-3", operation="generate",
                        params=ImageParams(prompt="A fox", size="1792x1024", quality="hd", style="natural", n=1))
    sent = upstream.requests_to("/v1/images/generations")[0].json
    assert sent == {"model": "dall-e-3", "prompt": "A fox", "n": 1, "size": "1792x1024", "quality": "hd",
                    "style": "natural", "response_format": "b64_json"}
    image = generation.images.get()
    assert image.width == 64 and image.revised_prompt == "A fox, in watercolor"
    assert default_storage.exists(image.file.name)
    with image.file.open("rb") as f:
        assert f.read() == gradient_png(64, 64, seed=0)
    assert generation.params == {"n": 1, "size": "1792x1024", "quality": "hd", "style": "natural"}
    run = Run.objects.get()
    assert run.capability == "image" and run.status == "succeeded" and run.total_ms is not None
    assert run.cost == Decimal("0.120000")  # dall-e-3 hd 1792x1024, one image
    assert run.output["revised_prompts"] == ["A fox, in watercolor"]


def test_gpt_image_1_gets_no_response_format_and_is_priced_by_tokens(team, owner, only_upstream, upstream):
    upstream.script("POST /v1/images/generations",
                    image_reply(2, width=32, height=32, usage={"input_tokens": 50, "output_tokens": 4000, "total_tokens": 4050}))
    generation = create(team=team, user=owner, provider=only_upstream, model="gpt-image-1", operation="generate",
                        params=ImageParams(prompt="Two stickers", size="1024x1024", quality="low", background="transparent", n=2))
    sent = upstream.requests_to("/v1/images/generations")[0].json
    assert "response_format" not in sent and sent["background"] == "transparent" and sent["n"] == 2
    assert generation.images.count() == 2
    run = Run.objects.get()
    assert (run.prompt_tokens, run.completion_tokens) == (50, 4000)
    assert run.cost == Decimal("0.160250")  # 50 x $5/M + 4000 x $40/M


def test_edit_sends_image_mask_and_fields_as_multipart(team, owner, only_upstream, upstream):
    upstream.script("POST /v1/images/edits", image_reply(2, width=64, height=64))
    mask = png_rgba(64, 64, alpha=0)
    generation = create(team=team, user=owner, provider=only_upstream, model="dall-e-2", operation="edit",
                        params=ImageParams(prompt="Add a red balloon", size="512x512", n=2),
                        image=_png(), mask=Upload(filename="mask.png", content=mask, content_type="image/png"))
    received = upstream.requests_to("/v1/images/edits")[0].multipart
    assert received["prompt"] == "Add a red balloon" and received["n"] == "2" and received["size"] == "512x512"
    assert received["model"] == "dall-e-2" and received["response_format"] == "b64_json"
    assert received["image"] == ("photo.png", gradient_png(64, 64), "image/png")
    assert received["mask"] == ("mask.png", mask, "image/png")
    assert generation.operation == "edit" and generation.images.count() == 2
    with generation.mask.open("rb") as f:
        assert f.read() == mask
    run = Run.objects.get()
    assert run.input["input"].startswith("photo.png (64x64 PNG") and run.params["mask"].startswith("mask.png")
    assert run.cost == Decimal("0.036000")


def test_variation_sends_the_image(team, owner, only_upstream, upstream):
    upstream.script("POST /v1/images/variations", image_reply(3, width=32, height=32))
    generation = create(team=team, user=owner, provider=only_upstream, model="dall-e-2", operation="variation",
                        params=ImageParams(size="256x256", n=3), image=_png())
    received = upstream.requests_to("/v1/images/variations")[0].multipart
    assert received["n"] == "3" and received["size"] == "256x256" and "prompt" not in received
    assert received["image"][1] == gradient_png(64, 64)
    assert generation.images.count() == 3 and generation.source_name == "photo.png"


def test_upload_that_is_not_an_image_is_named(team, owner, only_upstream, upstream):
    pdf = Upload(filename="report.pdf", content=b"%PDF-1.7 ...", content_type="application/pdf")
    with pytest.raises(ImageInputError) as exc:
        create(team=team, user=owner, provider=only_upstream, model="dall-e-2", operation="variation",
               params=ImageParams(n=1), image=pdf)
    assert exc.value.message == "report.pdf is not an image: upload a PNG, JPEG or WebP file." and exc.value.field == "image"
    assert not upstream.requests_to("/v1/images/variations") and not Run.objects.exists()


def test_image_over_the_size_limit_is_refused(team, owner, only_upstream, upstream):
    big = Upload(filename="huge.png", content=png_bytes(8, 8) + b"\x00" * (5 * 1024 * 1024), content_type="image/png")
    with pytest.raises(ImageInputError) as exc:
        create(team=team, user=owner, provider=only_upstream, model="dall-e-2", operation="variation",
               params=ImageParams(n=1), image=big)
    assert "huge.png is 5.0 MB; dall-e-2 takes images up to 4 MB" in exc.value.message
    assert not upstream.requests


def test_mask_of_the_wrong_size_names_both_sizes(team, owner, only_upstream, upstream):
    mask = Upload(filename="mask.png", content=png_rgba(32, 32, alpha=0), content_type="image/png")
    with pytest.raises(ImageInputError) as exc:
        create(team=team, user=owner, provider=only_upstream, model="dall-e-2", operation="edit",
               params=ImageParams(prompt="x"), image=_png(size=64), mask=mask)
    assert exc.value.message == "The mask is 32x32 but the image is 64x64; they must be the same size."
    assert not upstream.requests_to("/v1/images/edits")


def test_mask_without_alpha_is_refused(team, owner, only_upstream, upstream):
    mask = Upload(filename="flat.png", content=png_bytes(64, 64), content_type="image/png")
    with pytest.raises(ImageInputError, match="flat.png has no alpha channel"):
        create(team=team, user=owner, provider=only_upstream, model="dall-e-2", operation="edit",
               params=ImageParams(prompt="x"), image=_png(size=64), mask=mask)


def test_dall_e_2_takes_square_pngs_only(team, owner, only_upstream):
    wide = Upload(filename="wide.png", content=gradient_png(64, 32), content_type="image/png")
    with pytest.raises(ImageInputError, match="wide.png is 64x32, not square: dall-e-2 takes square PNG images only"):
        create(team=team, user=owner, provider=only_upstream, model="dall-e-2", operation="variation",
               params=ImageParams(n=1), image=wide)


@pytest.mark.parametrize("model,params,message", [
    ("dall-e-2", ImageParams(prompt="x", quality="hd"), "dall-e-2 has no quality setting."),
    ("dall-e-3", ImageParams(prompt="x", n=2), "2 images is not possible: dall-e-3 makes one image per request."),
    ("dall-e-3", ImageParams(prompt="x", size="256x256"), "dall-e-3 does not make 256x256 images; choose 1024x1024, 1792x1024, 1024x1792."),
    ("gpt-image-1", ImageParams(prompt="x", background="green"), "gpt-image-1 takes background auto, transparent, opaque, not 'green'."),
    ("dall-e-2", ImageParams(prompt="  "), "Write a prompt describing the image you want."),
])
def test_parameters_the_model_does_not_take_are_refused(team, owner, only_upstream, upstream, model, params, message):
    with pytest.raises(ImageInputError) as exc:
        create(team=team, user=owner, provider=only_upstream, model=model, operation="generate", params=params)
    assert exc.value.message == message
    assert not upstream.requests_to("/v1/images/generations")


def test_dall_e_3_cannot_edit(team, owner, only_upstream):
    with pytest.raises(ImageInputError, match="dall-e-3 cannot edit images; pick a model that can"):
        create(team=team, user=owner, provider=only_upstream, model="dall-e-3", operation="edit",
               params=ImageParams(prompt="x"), image=_png())


def test_upstream_content_policy_error_is_shown_and_the_run_failed(team, owner, only_upstream, upstream):
    upstream.script("POST /v1/images/generations", Reply.error(
        400, "Your request was rejected as a result of our safety system.", code="content_policy_violation"))
    with pytest.raises(ProxyError) as exc:
        create(team=team, user=owner, provider=only_upstream, model="dall-e-3", operation="generate",
               params=ImageParams(prompt="something forbidden"))
    assert "rejected as a result of our safety system" in exc.value.message and exc.value.code == "content_policy_violation"
    run = Run.objects.get()
    assert run.status == "failed" and "safety system" in run.error
    assert not Generation.objects.exists()


def test_a_provider_without_the_operation_says_so(team, owner, upstream):
    local = Provider.objects.get(team=team, kind="local")
    with pytest.raises(ProxyError) as exc:
        create(team=team, user=owner, provider=local, model="dall-e-2", operation="generate", params=ImageParams(prompt="a cat"))
    assert exc.value.code == "not_supported" and "cannot do image generation" in exc.value.message
    assert Run.objects.get().status == "failed"


def test_delete_removes_files_and_the_generation_with_its_last_image(team, owner, only_upstream, upstream):
    upstream.script("POST /v1/images/variations", image_reply(2, width=16, height=16))
    generation = create(team=team, user=owner, provider=only_upstream, model="dall-e-2", operation="variation",
                        params=ImageParams(n=2), image=_png())
    first, second = generation.images.all()
    names = [first.file.name, second.file.name, generation.source.name]
    assert services.image_delete(image=first) is not None
    assert not default_storage.exists(names[0]) and default_storage.exists(names[1])
    assert services.image_delete(image=GeneratedImage.objects.get(pk=second.pk)) is None
    assert not Generation.objects.exists()
    assert not any(default_storage.exists(n) for n in names)


def test_cancel_stops_the_call_and_the_run_says_cancelled(team, owner, only_upstream, upstream):
    import asyncio

    upstream.script("POST /v1/images/generations", Reply(json={"data": []}, first_delay=5))

    async def scenario():
        task = asyncio.create_task(services.generation_create(
            team=team, user=owner, provider=only_upstream, model="dall-e-2", operation="generate",
            params=ImageParams(prompt="slow"), cancel_token="token-12345678"))
        while not upstream.requests_to("/v1/images/generations"):
            await asyncio.sleep(0.02)
        assert services.generation_cancel(team=team, token="token-12345678")
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not services.generation_cancel(team=team, token="token-12345678")  # no longer running

    async_to_sync(scenario)()
    run = Run.objects.get()
    assert run.status == "cancelled" and not Generation.objects.exists()


def test_a_provider_that_sends_links_instead_of_images_is_kept_as_links(team, owner, only_upstream, upstream, client):
    upstream.script("POST /v1/images/generations", Reply(json={"created": 1, "data": [{"url": "https://images.example.com/a.png"}]}))
    generation = create(team=team, user=owner, provider=only_upstream, model="some-diffusion-model", operation="generate",
                        params=ImageParams(prompt="a boat", size="512x512"))
    image = generation.images.get()
    assert image.url == "https://images.example.com/a.png" and not image.file
    # an unknown model gets only the plain parameters every compatible server takes
    assert upstream.requests_to("/v1/images/generations")[0].json == {
        "model": "some-diffusion-model", "prompt": "a boat", "n": 1, "size": "512x512", "response_format": "b64_json"}


def test_a_compatible_server_without_the_images_endpoint_says_so(team, owner, only_upstream, upstream):
    upstream.script("POST /v1/images/generations", Reply.error(404, "Not Found"))
    with pytest.raises(ProxyError) as exc:
        create(team=team, user=owner, provider=only_upstream, model="dall-e-2", operation="generate", params=ImageParams(prompt="a cat"))
    assert "has no such endpoint (/v1/images/generations)" in exc.value.message
