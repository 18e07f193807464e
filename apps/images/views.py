"""Images pages: thin views over services (writes) and selectors (reads).

`create` is an async view: an image can take a minute, and when the person presses
Cancel (or closes the tab) the browser drops the request, Django cancels the view, and
that cancels the upstream call and records the Run as cancelled.
"""
from __future__ import annotations

import asyncio
import logging
import mimetypes
import re

from asgiref.sync import async_to_sync, sync_to_async
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.accounts.decorators import team_required
from apps.accounts.models import Role
from apps.embeddings.downloads import UnsafeName, download_name, refused
from apps.images import selectors, services
from apps.images.models import Generation
from apps.images.options import EDIT, GENERATE, VARIATION, options_for
from apps.images.services import ImageInputError, ImageParams
from apps.proxy.errors import ProxyError
from apps.proxy.providers.base import Upload
from apps.proxy.selectors import model_resolve, parse_model_key

logger = logging.getLogger(__name__)

OPERATIONS = (GENERATE, EDIT, VARIATION)
MAX_UPLOAD_READ = 60 * 1024 * 1024  # above every model's limit; bigger is refused unread
TOKEN = re.compile(r"^[A-Za-z0-9-]{8,64}$")
CANCELLED = "Cancelled: the request to the model was stopped and nothing was kept. The run is recorded as cancelled."


def _form_from(generation: Generation | None, operation: str) -> dict:
    if generation is None:
        return {"operation": operation, "prompt": "", "model_key": "", "size": "", "quality": "", "style": "",
                "background": "", "n": 1, "source_generation": "", "source_image": ""}
    params = generation.params or {}
    return {
        "operation": generation.operation, "prompt": generation.prompt,
        "model_key": f"{generation.provider_id}:{generation.model}" if generation.provider_id else "",
        "size": params.get("size", ""), "quality": params.get("quality", ""), "style": params.get("style", ""),
        "background": params.get("background", ""), "n": params.get("n", 1),
        "source_generation": generation.pk if generation.source else "", "source_image": "",
        "has_mask": bool(generation.mask),
    }


def _source(form: dict) -> tuple[str, str]:
    """(URL, words) of the stored image the form will use when none is uploaded."""
    if form.get("source_image"):
        return reverse("images:image_file", args=[form["source_image"]]), f"image #{form['source_image']} from the gallery"
    if form.get("source_generation"):
        return reverse("images:generation_source", args=[form["source_generation"]]), f"the image of #{form['source_generation']}"
    return "", ""


def _page_context(request, *, form: dict, error: str = "", error_field: str = "", rerun: Generation | None = None) -> dict:
    operation = form["operation"]
    choices = async_to_sync(selectors.image_model_choices)(team=request.team, operation=operation)
    keys = [m.key for m in choices.index.models]
    if form.get("model_key") not in keys:
        form["model_key"] = keys[0] if keys else ""
    model = form["model_key"].partition(":")[2]
    source_url, source_label = _source(form) if operation != GENERATE else ("", "")
    return {
        "source_url": source_url, "source_label": source_label,
        "spec": options_for(model).for_page(model) if model else None, "spec_model": model,
        "spec_note": next((selectors.price_note(m) for m in choices.index.models if m.key == form["model_key"]), ""),
        "form": form, "operation": operation, "operations": OPERATIONS, "error": error, "error_field": error_field,
        "choices": choices, "index": choices.index, "rerun": rerun,
        "has_provider": selectors.has_image_provider(team=request.team),
        "gallery": selectors.gallery_page(team=request.team, page=request.GET.get("page")),
        "can_edit": request.membership.allows(Role.EDITOR),
    }


@team_required(Role.VIEWER)
@require_GET
def index(request):
    operation = request.GET.get("mode", GENERATE)
    operation = operation if operation in OPERATIONS else GENERATE
    rerun = None
    if request.GET.get("rerun"):
        rerun = selectors.generation_get(team=request.team, generation_id=request.GET["rerun"])
    form = _form_from(rerun, operation)
    if request.GET.get("from_image") and operation != GENERATE:
        # "Edit" or "Vary" on a gallery image: it becomes the input.
        source = selectors.image_get(team=request.team, image_id=request.GET["from_image"])
        form.update(source_image=source.pk, source_generation="", has_mask=False)
    return render(request, "images/index.html", _page_context(request, form=form, rerun=rerun))


def _authorise(request, role: str) -> None:
    """team_required for the async view: sets request.team or raises."""
    if not request.user.is_authenticated:
        raise PermissionError("login")
    membership = request.membership
    if not membership:
        raise PermissionDenied("Create or join a team first.")
    if not membership.allows(role):
        raise PermissionDenied(f"Your role in {membership.team.name} is {membership.role}; this needs {role}.")
    request.team = membership.team


def _upload(request, name: str) -> Upload | None:
    file = request.FILES.get(name)
    if file is None:
        return None
    if file.size > MAX_UPLOAD_READ:
        raise ImageInputError(f"{file.name} is {file.size / 1024 / 1024:.1f} MB; images can be at most 50 MB.", field=name)
    return Upload(filename=(file.name or name)[:200], content=file.read(), content_type=file.content_type or "application/octet-stream")


async def create(request):
    """Generate, edit or vary: one call, one Run, then the new card (htmx) or the page."""
    if request.method != "POST":
        return HttpResponse("Use POST to create images.", status=405, headers={"Allow": "POST"})
    try:
        await sync_to_async(_authorise)(request, Role.EDITOR)
    except PermissionError:
        return redirect_to_login(reverse("images:index"))
    post = request.POST
    operation = post.get("operation", GENERATE)
    token = post.get("cancel_token", "")
    token = token if TOKEN.match(token) else ""
    form = {k: post.get(k, "") for k in ("operation", "prompt", "model_key", "size", "quality", "style", "background", "n", "source_generation", "source_image")}
    try:
        image = _upload(request, "image")
        mask = _upload(request, "mask")
        if operation in (EDIT, VARIATION) and image is None and post.get("source_image"):
            chosen = await sync_to_async(selectors.image_get)(team=request.team, image_id=post["source_image"])
            image = await sync_to_async(services.upload_from_image)(image=chosen)
        elif operation in (EDIT, VARIATION) and image is None and post.get("source_generation"):
            earlier = await sync_to_async(selectors.generation_get)(team=request.team, generation_id=post["source_generation"])
            image = await sync_to_async(services.upload_from_generation)(generation=earlier, which="image")
            if mask is None and operation == EDIT and post.get("reuse_mask"):
                mask = await sync_to_async(services.upload_from_generation)(generation=earlier, which="mask")
        try:
            provider_id, model = parse_model_key(post.get("model_key", ""))
            provider, _entry = await model_resolve(team=request.team, model=model, provider_id=provider_id)
        except ProxyError as exc:
            raise ImageInputError(exc.message, field="model_key") from None
        params = ImageParams(prompt=post.get("prompt", ""), size=post.get("size", ""), quality=post.get("quality", ""),
                             style=post.get("style", ""), background=post.get("background", ""), n=post.get("n", "1") or 1)
        generation = await services.generation_create(
            team=request.team, user=request.user, provider=provider, model=model, operation=operation,
            params=params, image=image, mask=mask, cancel_token=token,
        )
    except asyncio.CancelledError:
        # Cancel on the page (a closed tab cancels the view too; then nobody reads this).
        return await sync_to_async(_failed)(request, form, CANCELLED, "", status=200)
    except ImageInputError as exc:
        return await sync_to_async(_failed)(request, form, exc.message, exc.field, status=400)
    except ProxyError as exc:
        return await sync_to_async(_failed)(request, form, exc.message, "", status=exc.status if 400 <= exc.status < 600 else 502)
    return await sync_to_async(_created)(request, generation.pk)


@team_required(Role.EDITOR)
@require_POST
def cancel(request):
    """Stop the call the page started with this token (it answers itself, saying cancelled)."""
    stopped = services.generation_cancel(team=request.team, token=request.POST.get("token", ""))
    return HttpResponse("cancelling" if stopped else "not running", content_type="text/plain")


def _failed(request, form: dict, message: str, field: str, *, status: int) -> HttpResponse:
    if request.htmx:
        context = {"error": message, "error_field": field, "cancelled": message == CANCELLED}
        response = render(request, "images/index.html#error", context, status=200)
        response["HX-Retarget"] = "#image-error"
        response["HX-Reswap"] = "outerHTML"
        return response
    context = _page_context(request, form=form, error=message, error_field=field)
    context["cancelled"] = message == CANCELLED
    return render(request, "images/index.html", context, status=status)


def _created(request, generation_id: int) -> HttpResponse:
    generation = selectors.generation_get(team=request.team, generation_id=generation_id)
    if request.htmx:
        context = {"g": generation, "can_edit": True, "fresh": True,
                   "gallery_count": selectors.generations_for_team(team=request.team).count()}
        return render(request, "images/index.html#generation", context)
    return redirect(f"{reverse('images:index')}?mode={generation.operation}#gen-{generation.pk}")


def _serve(field, *, content_type: str, name: str, inline: bool = True) -> FileResponse:
    if not field:
        raise Http404("This image has no stored file.")
    try:
        handle = field.open("rb")
    except FileNotFoundError:
        raise Http404("The file is missing from storage.") from None
    response = FileResponse(handle, content_type=content_type, as_attachment=not inline, filename=name)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=86400"
    return response


@team_required(Role.VIEWER)
@require_GET
def image_file(request, image_id: int):
    image = selectors.image_get(team=request.team, image_id=image_id)
    return _serve(image.file, content_type=image.content_type, name=f"image-{image.pk}.{image.extension}")


@team_required(Role.VIEWER)
@require_GET
def image_download(request, image_id: int):
    image = selectors.image_get(team=request.team, image_id=image_id)
    try:
        name = download_name(request.GET.get("name"), default=f"image-{image.pk}", extension=image.extension)
    except UnsafeName as exc:
        return refused(exc)
    return _serve(image.file, content_type=image.content_type, name=name, inline=False)


@team_required(Role.VIEWER)
@require_GET
def generation_input(request, generation_id: int, which: str = "source"):
    generation = selectors.generation_get(team=request.team, generation_id=generation_id)
    field = generation.mask if which == "mask" else generation.source
    content_type = mimetypes.guess_type(field.name or "")[0] or "application/octet-stream"
    return _serve(field, content_type=content_type, name=f"{which}-{generation.pk}")


@team_required(Role.EDITOR)
@require_POST
def image_delete(request, image_id: int):
    image = selectors.image_get(team=request.team, image_id=image_id)
    left = services.image_delete(image=image)
    if request.htmx:
        if left is None:
            return HttpResponse("")  # the whole card goes
        return render(request, "images/index.html#generation", {"g": selectors.generation_get(team=request.team, generation_id=left.pk), "can_edit": True})
    messages.success(request, "Deleted the image.")
    return redirect("images:index")


@team_required(Role.EDITOR)
@require_POST
def generation_delete(request, generation_id: int):
    generation = selectors.generation_get(team=request.team, generation_id=generation_id)
    services.generation_delete(generation=generation)
    if request.htmx:
        return HttpResponse("")
    messages.success(request, "Deleted the images.")
    return redirect("images:index")
