"""Reads for images, always scoped to a team, and the model choices the page offers."""
from __future__ import annotations

import json
from dataclasses import dataclass

from django.core.paginator import Page, Paginator
from django.db.models import Prefetch, QuerySet

from apps.accounts.models import Team
from apps.accounts.selectors import team_get_object_or_404
from apps.images.models import GeneratedImage, Generation
from apps.images.options import CAPABILITY_FOR, GENERATE, options_for
from apps.proxy.models import ProviderKind
from apps.proxy.selectors import ModelEntry, ModelIndex, model_index, providers_for_team

PAGE_SIZE = 12


def generations_for_team(*, team: Team) -> QuerySet[Generation]:
    images = Prefetch("images", queryset=GeneratedImage.objects.order_by("index"))
    return Generation.objects.filter(team=team).select_related("run", "user").prefetch_related(images)


def gallery_page(*, team: Team, page: int | str | None = 1) -> Page:
    """Newest first, PAGE_SIZE generations a page (a bad page number gives the last/first)."""
    return Paginator(generations_for_team(team=team), PAGE_SIZE).get_page(page)


def generation_get(*, team: Team, generation_id: int | str) -> Generation:
    return team_get_object_or_404(generations_for_team(team=team), team=team, pk=generation_id)


def image_get(*, team: Team, image_id: int | str) -> GeneratedImage:
    return team_get_object_or_404(GeneratedImage.objects.select_related("generation"), team=team, pk=image_id)


def has_image_provider(*, team: Team) -> bool:
    """Image models need an OpenAI or compatible provider: the local engine has none."""
    return providers_for_team(team=team, enabled_only=True).exclude(kind=ProviderKind.LOCAL).exists()


def price_note(entry: ModelEntry) -> str:
    """What a model costs, for the line under the picker."""
    if entry.note:
        return entry.note
    if entry.input_price is not None or entry.output_price is not None:
        return f"${entry.input_price or 0:g} in / ${entry.output_price or 0:g} out per 1M tokens (from the usage it reports)"
    return "No price known: cost shows as n/a (an owner can add one in Settings → Prices)."


@dataclass
class ImageModelChoices:
    index: ModelIndex  # for the shared model picker
    options_json: str  # model key -> options, for static/js/images.js


async def image_model_choices(*, team: Team, operation: str = GENERATE) -> ImageModelChoices:
    """The team's models that can do `operation` (plus unknown ones, still usable).

    The local engine is left out: it has no image model, and the page says so.
    """
    index = await model_index(team=team)
    capability = CAPABILITY_FOR[operation]
    models = [m for m in index.for_capability(capability) if m.provider_kind != ProviderKind.LOCAL]
    if operation == GENERATE:
        # Unknown models are offered only for generation when no known image model exists.
        known = [m for m in models if m.known]
        models = known or models
    else:
        models = [m for m in models if m.known] or models
    options = {m.key: {**options_for(m.id).for_page(m.id), "note": price_note(m)} for m in models}
    return ImageModelChoices(index=ModelIndex(models=models, errors=index.errors), options_json=json.dumps(options))
