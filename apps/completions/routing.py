from __future__ import annotations

from django.urls import path

from apps.completions.consumers import CompletionConsumer

websocket_urlpatterns = [path("ws/completions/", CompletionConsumer.as_asgi())]
