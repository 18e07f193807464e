"""Helpers for the completions tests: a signed-in websocket client and the page's form."""
from __future__ import annotations

import asyncio

import pytest
from channels.testing import WebsocketCommunicator


class CompletionClient:
    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.ws = communicator
        self.frames: list[str] = []
        self.mark = 0

    async def send(self, data: dict) -> None:
        """Send a form; `until` then looks only at the frames that answer it."""
        self.mark = len(self.frames)
        await self.ws.send_json_to(data)

    async def until(self, needle: str, timeout: float = 10.0) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not any(needle in f for f in self.frames[self.mark:]):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no frame with {needle!r} in {timeout}s; got:\n" + "\n---\n".join(self.frames)[-3000:])
            self.frames.append(await self.ws.receive_from(timeout=remaining))
        return "".join(self.frames[self.mark:])

    async def close(self) -> None:
        await self.ws.disconnect()


@pytest.fixture
def completions_connect():
    from apps.completions.consumers import CompletionConsumer

    clients: list[CompletionClient] = []

    async def connect(user, team) -> CompletionClient:
        communicator = WebsocketCommunicator(CompletionConsumer.as_asgi(), "/ws/completions/")
        communicator.scope["user"] = user
        communicator.scope["session"] = {"team_id": team.pk}
        connected, _ = await communicator.connect()
        assert connected
        client = CompletionClient(communicator)
        clients.append(client)
        return client

    yield connect


def form(provider, prompt: str = "Once", model: str = "gpt-3.5-turbo-instruct", **extra) -> dict:
    """What the page's form sends for Run (the htmx ws extension's JSON)."""
    data = {"model_key": f"{provider.pk}:{model}", "prompt": prompt, "version": "", "temperature": "", "top_p": "",
            "max_tokens": "16", "stop": "", "presence_penalty": "", "frequency_penalty": "", "seed": "", "n": "",
            "top_logprobs": "5", "best_of": "", "suffix": ""}
    data.update(extra)
    return data
