"""Every websocket route refuses a connection from a foreign Origin (cross-site websocket
hijacking: another site's page opening a socket with the user's cookies).

The routes are whatever playground.routing collects from the apps, so a route added
later is covered without touching this file. A signed-in user from an allowed Origin is
the control: it shows that the refusal comes from the Origin check.
"""
from __future__ import annotations

import os
import re

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls.resolvers import RoutePattern

from playground.routing import websocket_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True)

FOREIGN_ORIGINS = [
    b"http://evil.example",
    b"https://evil.example",
    b"http://testserver.evil.example",
    b"http://evil.example:80",
    b"null",
]
CONVERTER_VALUES = {"int": "1", "str": "x", "slug": "x", "uuid": "00000000-0000-0000-0000-000000000001", "path": "x"}


def _route_paths() -> list[str]:
    paths = []
    for route in websocket_urlpatterns():
        pattern = route.pattern
        assert isinstance(pattern, RoutePattern), f"write {pattern} as path(): this walk fills path() converters only"
        text = re.sub(r"<(?:(\w+):)?\w+>", lambda m: CONVERTER_VALUES.get(m.group(1) or "str", "x"), str(pattern))
        paths.append("/" + text.lstrip("^/").rstrip("$"))
    return paths


def _ids():
    return _route_paths() or ["no-routes"]


@pytest.fixture
def session_cookie(owner, team):
    client = Client()
    client.force_login(owner)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def _application():
    os.environ["PLAYGROUND_SKIP_STARTUP"] = "1"  # the startup recovery is tested on its own
    from playground.asgi import application

    return application


async def _connects(path: str, headers: list[tuple[bytes, bytes]]) -> bool:
    communicator = WebsocketCommunicator(_application(), path, headers=headers)
    try:
        connected, _ = await communicator.connect(timeout=5)
    finally:
        await communicator.disconnect()
    return connected


def test_there_are_websocket_routes_to_check():
    assert _route_paths(), "no websocket routes: pages stream over websockets, so some are expected"


@pytest.mark.parametrize("path", _ids())
async def test_foreign_origin_is_refused(path, session_cookie):
    if path == "no-routes":
        pytest.skip("no websocket routes yet")
    for origin in FOREIGN_ORIGINS:
        assert not await _connects(path, [(b"origin", origin), (b"cookie", session_cookie)]), f"{path} accepted Origin {origin!r}"
    # No Origin header at all (not a browser): refused as well.
    assert not await _connects(path, [(b"cookie", session_cookie)]), f"{path} accepted a connection without Origin"


async def test_same_origin_signed_in_user_connects_to_the_chat_socket(session_cookie):
    """The control: the same request from the app's own origin is accepted."""
    paths = [p for p in _route_paths() if p.startswith("/ws/chat/")]
    if not paths:
        pytest.skip("the chat websocket is not routed")
    assert await _connects(paths[0], [(b"origin", b"http://testserver"), (b"cookie", session_cookie)])


@pytest.mark.parametrize("path", _ids())
async def test_anonymous_socket_is_refused_on_every_route(path):
    """From the app's own origin but with no session: no route serves an anonymous user."""
    if path == "no-routes":
        pytest.skip("no websocket routes yet")
    communicator = WebsocketCommunicator(_application(), path, headers=[(b"origin", b"http://testserver")])
    try:
        connected, _ = await communicator.connect(timeout=5)
        if connected:  # accepted then closed at once is a refusal too
            output = await communicator.receive_output(timeout=2)
            assert output["type"] == "websocket.close", f"{path} served an anonymous socket: {output}"
    finally:
        await communicator.disconnect()
