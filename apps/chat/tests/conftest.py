"""Helpers for the chat tests: a websocket client of the chat consumer, signed in."""
from __future__ import annotations

import pytest

from tests.websocket import SocketClient, socket_connector


@pytest.fixture(autouse=True)
def _short_grace(settings):
    settings.CHAT_RECONNECT_GRACE_SECONDS = 0.3


class ChatClient(SocketClient):
    timeout = 5.0
    from_mark = False  # chat tests read every frame of the conversation so far


@pytest.fixture
def chat_connect():
    from apps.chat.consumers import ChatConsumer

    return socket_connector(ChatConsumer, "/ws/chat/", ChatClient)


def form(provider, draft: str = "Say hello", model: str = "gpt-4o-mini", **extra) -> dict:
    """What the page's form sends for Run (the htmx ws extension's JSON)."""
    data = {"model_key": f"{provider.pk}:{model}", "draft": draft, "system": "", "conversation": "",
            "uid": [], "role": [], "content": [], "images": [], "tool_calls": [], "tool_call_id": [], "runs": [],
            "compare_turn": []}
    for key, value in extra.items():
        data[key] = value
    return data


def with_messages(data: dict, messages: list[dict]) -> dict:
    """Put messages on the page (as the form's repeated fields)."""
    for i, m in enumerate(messages):
        data["uid"].append(m.get("uid", f"u{i}"))
        data["role"].append(m["role"])
        data["content"].append(m.get("content", ""))
        data["images"].append(m.get("images", ""))
        data["tool_calls"].append(m.get("tool_calls", ""))
        data["tool_call_id"].append(m.get("tool_call_id", ""))
        data["runs"].append("")
        data["compare_turn"].append("0")
    return data
