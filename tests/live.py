"""A real ASGI server for this app on a loopback port, inside the test process.

Browser tests and /v1 SDK tests talk to it over real HTTP and websockets. It runs
playground.asgi.application under uvicorn in a thread with its own event loop and shares
the test database (use it from tests marked `django_db(transaction=True)`, so that what a
test writes is committed and visible to the server thread, and vice versa).

    @pytest.mark.django_db(transaction=True)
    def test_x(live_asgi):
        httpx.get(live_asgi.url + "/healthz")
"""
from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from dataclasses import dataclass

import pytest


@dataclass
class LiveServer:
    url: str
    host: str
    port: int

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_asgi(django_db_setup, django_db_blocker):
    import uvicorn

    os.environ["PLAYGROUND_SKIP_STARTUP"] = "1"  # the startup recovery is tested on its own
    from playground.asgi import application

    port = _free_port()
    config = uvicorn.Config(
        application, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
        ws="websockets-sansio", ws_ping_interval=None, timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # not the main thread

    def serve() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.serve())

    thread = threading.Thread(target=serve, name="live-asgi", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the live ASGI server did not start")
        time.sleep(0.02)
    host = "127.0.0.1"
    yield LiveServer(url=f"http://{host}:{port}", host=host, port=port)
    server.should_exit = True
    thread.join(timeout=5)
    _drop_server_connections(django_db_blocker)


def _drop_server_connections(django_db_blocker) -> None:
    """Connections the server's worker threads opened would keep PostgreSQL from dropping
    the test database at the end of the session; end them (the server is stopped)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
