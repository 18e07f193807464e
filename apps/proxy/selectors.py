"""Reads for the proxy: providers, the model index, runs. Always scoped to a team."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import QuerySet
from django.db.models.signals import post_delete, post_save

from apps.accounts.models import Team
from apps.accounts.selectors import team_get_object_or_404
from apps.proxy import catalog
from apps.proxy.db_threads import db
from apps.proxy.errors import ProxyError
from apps.proxy.models import ModelPrice, Provider, Run
from apps.proxy.services import price_from, provider_models

logger = logging.getLogger(__name__)


def providers_for_team(*, team: Team, enabled_only: bool = False) -> QuerySet[Provider]:
    qs = Provider.objects.filter(team=team)
    return qs.filter(enabled=True) if enabled_only else qs


def provider_get(*, team: Team, provider_id: int | str) -> Provider:
    return team_get_object_or_404(Provider, team=team, pk=provider_id)


def runs_for_team(*, team: Team) -> QuerySet[Run]:
    return Run.objects.filter(team=team).select_related("user", "provider")


def run_get(*, team: Team, run_id: int | str) -> Run:
    return team_get_object_or_404(runs_for_team(team=team), team=team, pk=run_id)


@dataclass
class ModelEntry:
    """One model of one provider, with what Playground knows about it."""

    id: str
    provider_id: int
    provider_name: str
    provider_kind: str
    owned_by: str = ""
    context_length: int | None = None
    max_output: int | None = None
    input_price: Decimal | None = None
    output_price: Decimal | None = None
    capabilities: frozenset[str] = field(default_factory=frozenset)
    note: str = ""
    known: bool = False

    @property
    def key(self) -> str:
        """Unique across providers: what pickers submit."""
        return f"{self.provider_id}:{self.id}"

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities


@dataclass
class ModelIndex:
    models: list[ModelEntry]
    errors: dict[str, str]  # provider name -> what failed

    def for_capability(self, capability: str) -> list[ModelEntry]:
        """Models known to do `capability`, then models we know nothing about (still usable)."""
        return [m for m in self.models if m.supports(capability) or not m.known]

    def find(self, model: str, *, provider_id: int | None = None) -> ModelEntry | None:
        for entry in self.models:
            if entry.id == model and (provider_id is None or entry.provider_id == provider_id):
                return entry
        return None


def _entry(provider: Provider, raw: dict[str, Any], prices: list[tuple[str, Decimal, Decimal]], contexts: dict[str, int]) -> ModelEntry:
    model_id = raw["id"]
    meta = catalog.lookup(model_id)
    input_price, output_price = price_from(prices, model_id)
    caps = set(meta.capabilities) if meta else set()
    caps |= set(raw.get("capabilities") or ())  # the local engine describes its own models
    return ModelEntry(
        id=model_id,
        provider_id=provider.pk,
        provider_name=provider.name,
        provider_kind=provider.kind,
        owned_by=str(raw.get("owned_by") or ""),
        context_length=contexts.get(model_id) or raw.get("context_length") or (meta.context_length if meta else None),
        max_output=(meta.max_output if meta else None) or raw.get("max_output"),
        input_price=input_price,
        output_price=output_price,
        capabilities=frozenset(caps),
        note=raw.get("description") or (meta.note if meta else ""),
        known=bool(meta) or bool(raw.get("capabilities")),
    )


async def model_index(*, team: Team, refresh: bool = False) -> ModelIndex:
    """Every model of every enabled provider of the team, fetched concurrently.

    A provider that fails is reported in `errors` and the others still list.
    """
    providers, prices, contexts = await database_sync_to_async(_index_rows)(team)

    async def one(provider: Provider) -> tuple[Provider, list[dict[str, Any]] | ProxyError]:
        try:
            return provider, await provider_models(provider=provider, refresh=refresh)
        except ProxyError as exc:
            return provider, exc
        except Exception as exc:  # a broken provider must not hide the others' models
            logger.exception("listing models of %s failed", provider.name)
            return provider, ProxyError(f"Listing models failed: {type(exc).__name__}: {exc}", code="internal_error", status=500)

    models: list[ModelEntry] = []
    errors: dict[str, str] = {}
    for provider, result in await asyncio.gather(*(one(p) for p in providers)):
        if isinstance(result, ProxyError):
            errors[provider.name] = result.message
            continue
        models.extend(_entry(provider, raw, prices, contexts) for raw in result)
    models.sort(key=lambda m: (m.provider_kind != "local", m.provider_name.lower(), m.id))
    return ModelIndex(models=models, errors=errors)


def _price_rows(team: Team):
    price_rows = list(ModelPrice.objects.filter(team=team))
    prices = [(p.model, p.input_per_million, p.output_per_million) for p in price_rows]
    contexts = {p.model: p.context_length for p in price_rows if p.context_length}
    return prices, contexts


def _index_rows(team: Team):
    return list(providers_for_team(team=team, enabled_only=True)), *_price_rows(team)


def _provider_rows(team: Team, provider_id: int):
    provider = providers_for_team(team=team, enabled_only=True).filter(pk=provider_id).first()
    return provider, *(_price_rows(team) if provider else ([], {}))


# A page's model call resolves its provider before every run, and those two queries cost
# about 2.5 ms of ORM work on a small machine, all of it before the first token. So the rows
# are kept for PROVIDER_CACHE_SECONDS in this process, and emptied at once on any provider
# or price change here; other server processes see a change within that time.
_provider_cache: dict[tuple[int, int], tuple[float, tuple]] = {}


def _provider_cache_forget(**kwargs: Any) -> None:
    _provider_cache.clear()


for _model in (Provider, ModelPrice, Team):
    post_save.connect(_provider_cache_forget, sender=_model, dispatch_uid=f"provider-rows-save-{_model.__name__}")
    post_delete.connect(_provider_cache_forget, sender=_model, dispatch_uid=f"provider-rows-delete-{_model.__name__}")


async def _provider_rows_cached(team: Team, provider_id: int) -> tuple:
    key = (team.pk, provider_id)
    ttl = settings.PROVIDER_CACHE_SECONDS
    now = time.monotonic()
    cached = _provider_cache.get(key)
    if cached is not None and now - cached[0] < ttl:
        return cached[1]
    rows = await db(_provider_rows, team, provider_id)
    if ttl > 0 and rows[0] is not None:
        if len(_provider_cache) > 10_000:
            _provider_cache.clear()
        _provider_cache[key] = (now, rows)
    return rows


async def model_resolve(*, team: Team, model: str, provider_id: int | None = None) -> tuple[Provider, ModelEntry | None]:
    """The provider that serves `model` for this team.

    With `provider_id` (pages pick a provider and a model) the provider must belong to the
    team (another team's is 'not found'). Without it (/v1), the model id is looked up
    across the team's providers; "Provider name/model" picks one explicitly.
    """
    if provider_id is not None:
        # Only this provider's list is needed, not the whole team's index: this runs before
        # every page's model call, so it is cached rows and a cached model list.
        provider, prices, contexts = await _provider_rows_cached(team, provider_id)
        if provider is None:
            raise ProxyError("That provider does not exist in your team (or is disabled).", code="provider_not_found", status=404)
        try:
            listed = await provider_models(provider=provider)
        except ProxyError:  # not listable right now: the call itself will say what is wrong
            return provider, None
        raw = next((item for item in listed if item.get("id") == model), None)
        return provider, _entry(provider, raw, prices, contexts) if raw else None
    index = await model_index(team=team)
    entry = index.find(model)
    if entry is None and "/" in model:
        name, _, bare = model.partition("/")
        entry = next((m for m in index.models if m.provider_name == name and m.id == bare), None)
    if entry is None:
        failing = f" (not reachable: {', '.join(index.errors)})" if index.errors else ""
        raise ProxyError(
            f"The model '{model}' does not exist in any provider of your team{failing}. GET /v1/models lists the models you can use.",
            code="model_not_found", status=404, param="model",
        )
    provider = await database_sync_to_async(lambda: Provider.objects.get(pk=entry.provider_id))()
    return provider, entry


def parse_model_key(key: str) -> tuple[int, str]:
    """A picker's value "<provider id>:<model id>" -> (provider id, model id).

    Raises ProxyError (400) for anything else, so a tampered form gets a clear message.
    """
    provider_id, sep, model = (key or "").partition(":")
    if not sep or not provider_id.isdigit() or not model:
        raise ProxyError("Pick a model first.", code="bad_request", status=400, param="model")
    return int(provider_id), model


async def model_choices(*, team: Team, capability: str) -> ModelIndex:
    """The team's model index narrowed to what a page can use (for the model picker)."""
    index = await model_index(team=team)
    return ModelIndex(models=index.for_capability(capability), errors=index.errors)
