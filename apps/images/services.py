"""Writes for images: check what was asked, call the model through the proxy service (one
Run per call), store the images it returned, delete them.

Checks come first and name what to fix: an upload that is not an image, one over the
model's size limit, a mask that is not a PNG with alpha or not the image's size, a
parameter the model does not take. Only then is anything sent upstream.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import threading
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from channels.db import database_sync_to_async
from django.core.files.base import ContentFile
from django.db import transaction

from apps.accounts.models import Team
from apps.images import imagefile
from apps.images.models import GeneratedImage, Generation
from apps.images.options import EDIT, GENERATE, KNOWN, VARIATION, ImageModelOptions, options_for
from apps.proxy import catalog
from apps.proxy.errors import ProxyError
from apps.proxy.models import Capability, Provider, Run
from apps.proxy.providers import provider_for
from apps.proxy.providers.base import Upload
from apps.proxy.services import call_recorded

logger = logging.getLogger(__name__)

OPERATION_WORDS = {GENERATE: "generate images", EDIT: "edit images", VARIATION: "make variations"}


class ImageInputError(ValueError):
    """Input a person can fix; `field` names the form field at fault."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass
class ImageParams:
    """The form's choices, before checking them against the model."""

    prompt: str = ""
    size: str = ""
    quality: str = ""
    style: str = ""
    background: str = ""
    n: str | int = 1


# -- checks ---------------------------------------------------------------------------------------

def _models_that(operation: str) -> str:
    names = [name for name, opts in KNOWN.items() if operation in opts.operations]
    return " or ".join(names)


def params_check(*, operation: str, model: str, params: ImageParams) -> dict[str, Any]:
    """The parameters to send, or ImageInputError saying which one the model does not take."""
    if operation not in (GENERATE, EDIT, VARIATION):
        raise ImageInputError(f"Unknown operation {operation!r}: choose generate, edit or variation.", field="operation")
    opts = options_for(model)
    if operation not in opts.operations:
        raise ImageInputError(
            f"{model} cannot {OPERATION_WORDS[operation]}; pick a model that can ({_models_that(operation)}).", field="model_key"
        )
    out: dict[str, Any] = {}
    prompt = (params.prompt or "").strip()
    if operation != VARIATION:
        if not prompt:
            what = "the image you want" if operation == GENERATE else "the edit: what should appear in the masked area"
            raise ImageInputError(f"Write a prompt describing {what}.", field="prompt")
        if len(prompt) > opts.max_prompt:
            raise ImageInputError(
                f"The prompt is {len(prompt):,} characters; {model} takes at most {opts.max_prompt:,}.", field="prompt"
            )
        out["prompt"] = prompt
    try:
        n = int(params.n or 1)
    except (TypeError, ValueError):
        raise ImageInputError(f"Number of images must be a whole number, not {params.n!r}.", field="n") from None
    if not 1 <= n <= opts.max_n:
        limit = f"{model} makes one image per request" if opts.max_n == 1 else f"{model} makes 1 to {opts.max_n} images per request"
        raise ImageInputError(f"{n} images is not possible: {limit}.", field="n")
    out["n"] = n
    size = params.size or opts.sizes[-1 if opts.family == "dall-e-2" else 0]
    if size not in opts.sizes:
        raise ImageInputError(f"{model} does not make {size} images; choose {', '.join(opts.sizes)}.", field="size")
    out["size"] = size
    for name, allowed in (("quality", opts.qualities), ("style", opts.styles), ("background", opts.backgrounds)):
        value = getattr(params, name)
        if not value:
            continue
        if not allowed:
            raise ImageInputError(opts.reason_missing(name, model), field=name)
        if value not in allowed:
            raise ImageInputError(f"{model} takes {name} {', '.join(allowed)}, not {value!r}.", field=name)
        if name == "style" and operation != GENERATE:
            continue
        out[name] = value
    if opts.sends_response_format:
        out["response_format"] = "b64_json"
    return out


def upload_check(*, upload: Upload, model: str, role: str = "image") -> imagefile.ImageInfo:
    """The image's type and size, or ImageInputError naming the file and what is wrong."""
    opts = options_for(model)
    name = upload.filename or f"The {role}"
    if not upload.content:
        raise ImageInputError(f"{name} is empty.", field=role)
    info = imagefile.inspect(upload.content)
    if info is None:
        raise ImageInputError(f"{name} is not an image: upload a PNG, JPEG or WebP file.", field=role)
    if len(upload.content) > opts.max_upload_bytes:
        raise ImageInputError(
            f"{name} is {len(upload.content) / 1024 / 1024:.1f} MB; {model} takes images up to "
            f"{opts.max_upload_bytes // (1024 * 1024)} MB. Make it smaller or pick another model.",
            field=role,
        )
    if role == "image":
        if opts.square_png_only and (info.format != "png" or info.width != info.height):
            shape = "" if info.width == info.height else f"{info.size}, not square"
            what = ", ".join(p for p in (info.format.upper() if info.format != "png" else "", shape) if p)
            raise ImageInputError(f"{name} is {what}: {model} takes square PNG images only.", field=role)
        if info.format not in ("png", "jpeg", "webp"):
            raise ImageInputError(f"{name} is a {info.format.upper()}: upload a PNG, JPEG or WebP file.", field=role)
    return info


def mask_check(*, mask: Upload, image_info: imagefile.ImageInfo, model: str) -> imagefile.ImageInfo:
    """A mask is a PNG with an alpha channel, of exactly the image's size."""
    info = upload_check(upload=mask, model=model, role="mask")
    name = mask.filename or "The mask"
    if info.format != "png":
        raise ImageInputError(f"{name} is a {info.format.upper()}; the mask must be a PNG with an alpha channel.", field="mask")
    if not info.has_alpha:
        raise ImageInputError(
            f"{name} has no alpha channel; the mask must be a PNG whose transparent pixels mark the area to edit.", field="mask"
        )
    if (info.width, info.height) != (image_info.width, image_info.height):
        raise ImageInputError(
            f"The mask is {info.size} but the image is {image_info.size}; they must be the same size.", field="mask"
        )
    return info


# -- cancelling -------------------------------------------------------------------------------------

# Calls in flight in this process: "<team id>:<token>" -> the task making the call, so the
# page's Cancel can stop it (the upstream request is closed, the Run says cancelled). The
# token is chosen by the page for each request.
_running: dict[str, asyncio.Task] = {}
_running_lock = threading.Lock()


def generation_cancel(*, team: Team, token: str) -> bool:
    """Cancel this team's call with that token, if it is running in this process."""
    with _running_lock:
        task = _running.get(f"{team.pk}:{token}")
    if task is None or task.done():
        return False
    task.get_loop().call_soon_threadsafe(task.cancel)
    return True


# -- the call ---------------------------------------------------------------------------------------

def _usage(result: dict[str, Any]) -> dict[str, int] | None:
    """gpt-image-1 reports input/output tokens; the Run counts them as prompt/completion."""
    usage = result.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("input_tokens", usage.get("prompt_tokens"))
    completion = usage.get("output_tokens", usage.get("completion_tokens"))
    if prompt is None and completion is None:
        return None
    return {"prompt_tokens": prompt or 0, "completion_tokens": completion or 0,
            "total_tokens": usage.get("total_tokens") or (prompt or 0) + (completion or 0)}


def _summary(result: dict[str, Any]) -> tuple[dict[str, Any], str, dict[str, int] | None]:
    data = result.get("data") if isinstance(result, dict) else None
    data = data if isinstance(data, list) else []
    revised = [d.get("revised_prompt") for d in data if isinstance(d, dict) and d.get("revised_prompt")]
    output = {"count": len(data), "revised_prompts": revised}
    return output, f"{len(data)} image{'s' if len(data) != 1 else ''}", _usage(result) if isinstance(result, dict) else None


def _described(upload: Upload, info: imagefile.ImageInfo) -> str:
    return f"{upload.filename} ({info.size} {info.format.upper()}, {len(upload.content):,} bytes)"


async def generation_create(
    *,
    team: Team,
    user,
    provider: Provider,
    model: str,
    operation: str,
    params: ImageParams,
    image: Upload | None = None,
    mask: Upload | None = None,
    cancel_token: str = "",
) -> Generation:
    """Check, call the model (a Run), and keep what it returned. ImageInputError or ProxyError;
    asyncio.CancelledError when `generation_cancel` stopped it."""
    body = params_check(operation=operation, model=model, params=params)
    opts = options_for(model)
    stored: dict[str, Any] = {"model": model, **body}
    image_info = None
    if operation in (EDIT, VARIATION):
        if image is None:
            what = "edit" if operation == EDIT else "vary"
            raise ImageInputError(f"Upload the image to {what}.", field="image")
        image_info = upload_check(upload=image, model=model)
        stored["input"] = _described(image, image_info)
        if mask is not None and operation == EDIT:
            mask_info = mask_check(mask=mask, image_info=image_info, model=model)
            stored["mask"] = _described(mask, mask_info)
        elif operation == EDIT and opts.edit_needs_transparency and not image_info.has_alpha:
            raise ImageInputError(
                f"{model} edits the transparent area of an image: paint a mask over the part to change, "
                "or upload a mask or an image with transparency.", field="mask",
            )
    impl = provider_for(provider)
    request = {"model": model, **body}
    if operation == GENERATE:
        call = lambda: impl.image_generate(request)  # noqa: E731
    elif operation == EDIT:
        call = lambda: impl.image_edit(image, mask, request)  # noqa: E731
    else:
        call = lambda: impl.image_variation(image, request)  # noqa: E731
    key = f"{team.pk}:{cancel_token}" if cancel_token else ""
    if key:
        with _running_lock:
            _running[key] = asyncio.current_task()
    try:
        result, run = await call_recorded(
            team=team, user=user, provider=provider, capability=Capability.IMAGE, model=model,
            request=stored, call=call, summarize=_summary,
        )
    finally:
        if key:
            with _running_lock:
                _running.pop(key, None)
    images = _decoded(result)
    if not images:
        raise ProxyError(f"{provider.name} answered without any image.", code="bad_response", status=502)
    return await database_sync_to_async(_generation_save)(
        team=team, user=user, provider=provider, model=model, operation=operation, body=body,
        image=image if operation != GENERATE else None, mask=mask if operation == EDIT else None,
        images=images, run=run, opts=opts,
    )


@dataclass
class _Returned:
    content: bytes | None
    info: imagefile.ImageInfo | None
    url: str
    revised_prompt: str


def _decoded(result: Any) -> list[_Returned]:
    out = []
    for item in (result.get("data") or []) if isinstance(result, dict) else []:
        if not isinstance(item, dict):
            continue
        revised = str(item.get("revised_prompt") or "")
        if item.get("b64_json"):
            try:
                content = base64.b64decode(item["b64_json"], validate=True)
            except (binascii.Error, ValueError):
                logger.warning("an image in the reply was not valid base64; skipped")
                continue
            info = imagefile.inspect(content)
            if info is None:
                logger.warning("an image in the reply was not a PNG/JPEG/WebP; skipped")
                continue
            out.append(_Returned(content, info, "", revised))
        elif isinstance(item.get("url"), str) and item["url"].startswith(("https://", "http://")):
            # Some compatible servers ignore response_format; their links expire, but are shown.
            out.append(_Returned(None, None, item["url"][:2000], revised))
    return out


@transaction.atomic
def _generation_save(*, team, user, provider, model, operation, body, image, mask, images, run: Run, opts: ImageModelOptions) -> Generation:
    generation = Generation(
        team=team, user=user if getattr(user, "is_authenticated", False) else None, provider=provider,
        provider_name=provider.name, model=model, operation=operation, prompt=body.get("prompt", ""),
        params={k: v for k, v in body.items() if k not in ("prompt", "response_format")}, run=run,
    )
    if image is not None:
        generation.source_name = (image.filename or "image")[:200]
        info = imagefile.inspect(image.content)
        generation.source.save(f"{uuid.uuid4().hex}.{info.format if info else 'png'}", ContentFile(image.content), save=False)
    if mask is not None:
        generation.mask.save(f"{uuid.uuid4().hex}-mask.png", ContentFile(mask.content), save=False)
    generation.save()
    for index, returned in enumerate(images):
        row = GeneratedImage(team=team, generation=generation, index=index, url=returned.url, revised_prompt=returned.revised_prompt)
        if returned.content is not None and returned.info is not None:
            row.content_type = returned.info.content_type
            row.width, row.height, row.bytes = returned.info.width, returned.info.height, len(returned.content)
            row.file.save(f"{uuid.uuid4().hex}.{returned.info.format}", ContentFile(returned.content), save=False)
        row.save()
    price = catalog.image_price(model, size=body.get("size", ""), quality=body.get("quality"))
    if price is not None and run.cost is None:
        run.cost = (price * Decimal(len(images))).quantize(Decimal("0.000001"))
        Run.objects.filter(pk=run.pk).update(cost=run.cost)
    return generation


def upload_from_generation(*, generation: Generation, which: str) -> Upload | None:
    """The stored input of an earlier edit or variation, to run it again."""
    field = generation.source if which == "image" else generation.mask
    if not field:
        return None
    with field.open("rb") as handle:
        content = handle.read()
    name = generation.source_name if which == "image" else "mask.png"
    info = imagefile.inspect(content)
    return Upload(filename=name or "image.png", content=content, content_type=info.content_type if info else "image/png")


def upload_from_image(*, image: GeneratedImage) -> Upload:
    """A gallery image as the input of an edit or a variation."""
    if not image.file:
        raise ImageInputError("That image is only a link from the provider, not stored here; download it and upload it.", field="image")
    with image.file.open("rb") as handle:
        content = handle.read()
    return Upload(filename=f"image-{image.pk}.{image.extension}", content=content, content_type=image.content_type)


# -- deleting -----------------------------------------------------------------------------------------

def _delete_files(*fields) -> None:
    for field in fields:
        if field:
            try:
                field.delete(save=False)
            except OSError:
                logger.warning("could not delete %s from storage", field.name, exc_info=True)


@transaction.atomic
def image_delete(*, image: GeneratedImage) -> Generation | None:
    """Delete one image; its generation goes too when it was the last. Returns what is left."""
    generation = image.generation
    files = [image.file]
    image.delete()
    if not generation.images.exists():
        generation_delete(generation=generation)
        generation = None
    transaction.on_commit(lambda: _delete_files(*files))
    return generation


@transaction.atomic
def generation_delete(*, generation: Generation) -> None:
    files = [generation.source, generation.mask, *(i.file for i in generation.images.all())]
    generation.delete()
    transaction.on_commit(lambda: _delete_files(*files))

