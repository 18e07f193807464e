"""Helpers for the chat tests: a websocket client of the chat consumer, signed in."""
from __future__ import annotations

import asyncio
import importlib.util

import pytest
from channels.testing import WebsocketCommunicator


@pytest.fixture(autouse=True)
def _engine_absent_means_disabled(request):
    """Until the local engine's provider lands, the team's 'local' provider cannot list models."""
    if "team" in request.fixturenames and importlib.util.find_spec("apps.engine.provider") is None:
        from apps.proxy.models import Provider

        request.getfixturevalue("team")
        Provider.objects.filter(kind="local").update(enabled=False)


@pytest.fixture(autouse=True)
def _short_grace(settings):
    settings.CHAT_RECONNECT_GRACE_SECONDS = 0.3


class ChatClient:
    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.ws = communicator
        self.frames: list[str] = []
        self.mark = 0

    async def send(self, data: dict) -> None:
        """Send a form; `until` then looks only at the frames that answer it."""
        self.mark = len(self.frames)
        await self.ws.send_json_to(data)

    async def until(self, needle: str, timeout: float = 5.0) -> str:
        """Receive frames until one contains `needle`; returns all received so far, joined."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not any(needle in f for f in self.frames[self.mark:]):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no frame with {needle!r} in {timeout}s; got:\n" + "\n---\n".join(self.frames)[-3000:])
            self.frames.append(await self.ws.receive_from(timeout=remaining))
        return "".join(self.frames)

    async def close(self) -> None:
        await self.ws.disconnect()


@pytest.fixture
def chat_connect():
    from apps.chat.consumers import ChatConsumer

    clients: list[ChatClient] = []

    async def connect(user, team, query: str = "") -> ChatClient:
        communicator = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat/" + query)
        communicator.scope["user"] = user
        communicator.scope["session"] = {"team_id": team.pk}
        if query.startswith("?"):
            communicator.scope["query_string"] = query[1:].encode()
        connected, _ = await communicator.connect()
        assert connected
        client = ChatClient(communicator)
        clients.append(client)
        return client

    yield connect


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
