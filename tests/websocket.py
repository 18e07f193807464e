"""A signed-in websocket client of a page's consumer, for consumer tests.

    client = await connect(user, team)           # from socket_connector(Consumer, "/ws/chat/")
    await client.send(form)                       # what the page's htmx ws extension sends
    html = await client.until("data-run-button")  # frames until one contains the needle
    await client.close()
"""
from __future__ import annotations

import asyncio

from channels.testing import WebsocketCommunicator


class SocketClient:
    timeout = 10.0
    # until() returns the frames that answer the last send (True) or every frame so far.
    from_mark = True

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.ws = communicator
        self.frames: list[str] = []
        self.mark = 0

    async def send(self, data: dict) -> None:
        """Send a form; `until` then looks only at the frames that answer it."""
        self.mark = len(self.frames)
        await self.ws.send_json_to(data)

    async def until(self, needle: str, timeout: float | None = None) -> str:
        """Receive frames until one since the last send contains `needle`."""
        timeout = self.timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not any(needle in f for f in self.frames[self.mark:]):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no frame with {needle!r} in {timeout}s; got:\n" + "\n---\n".join(self.frames)[-3000:])
            self.frames.append(await self.ws.receive_from(timeout=remaining))
        return "".join(self.frames[self.mark:] if self.from_mark else self.frames)

    async def close(self) -> None:
        await self.ws.disconnect()


def socket_connector(consumer, path: str, client_class: type[SocketClient] = SocketClient):
    """An async connect(user, team, query="") for `consumer`, signed in to `team`."""

    async def connect(user, team, query: str = "") -> SocketClient:
        communicator = WebsocketCommunicator(consumer.as_asgi(), path + query)
        communicator.scope["user"] = user
        communicator.scope["session"] = {"team_id": team.pk}
        if query.startswith("?"):
            communicator.scope["query_string"] = query[1:].encode()
        connected, _ = await communicator.connect()
        assert connected
        return client_class(communicator)

    return connect
