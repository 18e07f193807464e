"""Websocket routes, collected from the apps that stream to pages."""
from __future__ import annotations

from importlib import import_module

STREAMING_APPS = ["apps.chat", "apps.completions", "apps.prompts", "apps.embeddings", "apps.speech", "apps.finetunes", "apps.engine"]


def websocket_urlpatterns() -> list:
    patterns: list = []
    for app in STREAMING_APPS:
        try:
            module = import_module(f"{app}.routing")
        except ModuleNotFoundError as exc:
            if exc.name != f"{app}.routing":
                raise
            continue
        patterns += module.websocket_urlpatterns
    return patterns
