"""Helpers for the completions tests: a signed-in websocket client and the page's form."""
from __future__ import annotations

import pytest

from tests.websocket import socket_connector


@pytest.fixture
def completions_connect():
    from apps.completions.consumers import CompletionConsumer

    return socket_connector(CompletionConsumer, "/ws/completions/")


def form(provider, prompt: str = "Once", model: str = "gpt-3.5-turbo-instruct", **extra) -> dict:
    """What the page's form sends for Run (the htmx ws extension's JSON)."""
    data = {"model_key": f"{provider.pk}:{model}", "prompt": prompt, "version": "", "temperature": "", "top_p": "",
            "max_tokens": "16", "stop": "", "presence_penalty": "", "frequency_penalty": "", "seed": "", "n": "",
            "top_logprobs": "5", "best_of": "", "suffix": ""}
    data.update(extra)
    return data
