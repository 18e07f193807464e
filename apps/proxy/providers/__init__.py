"""Providers: where a model call actually goes.

The registry maps a provider kind to its class, imported lazily so that a page that only
talks to OpenAI never imports llama-cpp, and the engine's heavy imports happen once.
A new OpenAI-compatible server is a row of configuration, never a new class.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apps.proxy.models import Provider as ProviderRow
    from apps.proxy.providers.base import Provider

KINDS: dict[str, str] = {
    "openai_compatible": "apps.proxy.providers.openai_compatible.OpenAICompatibleProvider",
    "local": "apps.engine.provider.LocalEngineProvider",
}

KIND_LABELS = {"openai_compatible": "OpenAI-compatible", "local": "Local engine"}


def provider_class(kind: str) -> type[Provider]:
    try:
        dotted = KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown provider kind {kind!r}; known: {', '.join(KINDS)}") from None
    module_name, _, class_name = dotted.rpartition(".")
    return getattr(import_module(module_name), class_name)


def provider_for(row: ProviderRow) -> Provider:
    """The provider object for a configured row (cheap: providers hold no connections)."""
    return provider_class(row.kind)(row)
