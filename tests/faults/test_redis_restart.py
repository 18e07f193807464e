"""Redis restarted under load (only where REDIS_URL is set: CI's second pass).

While /v1 streams are in flight, Redis (the channel layer and the cache behind the /v1
rate limit) is shut down and started again on this machine. Streams in flight do not
touch Redis and must all complete; a request that arrives while Redis is down is still
served (the rate limit fails open rather than taking the API down); afterwards the
channel layer and the cache work again without restarting Playground. No run is lost.
"""
from __future__ import annotations

import shutil
import subprocess
import threading
import time
from urllib.parse import urlparse

import httpx
import orjson
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings

from apps.proxy.models import Run, RunStatus
from tests.faults.conftest import CHAT, sse_events, wait_finished
from tests.upstream import Reply, chat_chunks

pytestmark = pytest.mark.django_db(transaction=True)

# How this machine starts its Redis (the machine's own service command; it keeps nothing on disk).
REDIS_START = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "",
               "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"]


def _redis_ping(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def local_redis():
    url = django_settings.REDIS_URL
    if not url:
        pytest.skip("REDIS_URL is not set: the embedded default has no Redis to restart (CI's second pass runs this)")
    parsed = urlparse(url)
    if parsed.hostname not in ("127.0.0.1", "localhost") or (parsed.port or 6379) != 6379:
        pytest.skip("only this machine's own Redis on 127.0.0.1:6379 can be restarted by the test")
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        pytest.skip("redis-server/redis-cli are not installed here, so Redis cannot be restarted")
    if not _redis_ping(url):
        pytest.skip("Redis is not answering at REDIS_URL")
    yield url
    if not _redis_ping(url):  # never leave it stopped
        subprocess.run(REDIS_START, check=False, timeout=30)
        _wait_ping(url, up=True)


def _wait_ping(url: str, *, up: bool, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _redis_ping(url) == up:
            return
        time.sleep(0.05)
    raise AssertionError(f"Redis did not come {'up' if up else 'down'} in {timeout} s")


def _channel_roundtrip() -> str:
    from channels.layers import get_channel_layer

    async def roundtrip():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add("faults-redis", channel)
        await layer.group_send("faults-redis", {"type": "chat.chunk", "text": "still here"})
        message = await layer.receive(channel)
        await layer.group_discard("faults-redis", channel)
        return message["text"]

    return async_to_sync(roundtrip)()


def test_redis_restarted_under_load_no_stream_or_run_lost(v1_url, auth, upstream, local_redis):
    streams = 8
    pieces = [f"t{i} " for i in range(12)]
    upstream.script("POST /v1/chat/completions", *[Reply.stream(chat_chunks(pieces), delay=0.12)] * streams)
    assert _channel_roundtrip() == "still here"
    results: list[list[str]] = [[] for _ in range(streams)]
    started = threading.Barrier(streams + 1)

    def read(i):
        with httpx.Client(timeout=30) as http:
            with http.stream("POST", f"{v1_url}/chat/completions", headers=auth, json={**CHAT, "stream": True}) as response:
                assert response.status_code == 200
                first = True
                for line in response.iter_lines():
                    results[i].extend(sse_events([line]))
                    if first:
                        first = False
                        started.wait(10)

    readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(streams)]
    for reader in readers:
        reader.start()
    started.wait(20)  # every stream is under way

    subprocess.run(["redis-cli", "-u", local_redis, "shutdown", "nosave"], check=False, timeout=15, capture_output=True)
    try:
        _wait_ping(local_redis, up=False)
        # A request while Redis is down: the rate limit cannot count it, and lets it through.
        during = httpx.post(f"{v1_url}/chat/completions", headers=auth,
                            json={**CHAT, "messages": [{"role": "user", "content": "during the outage"}]}, timeout=20)
        assert during.status_code == 200, during.text
        assert during.json()["choices"][0]["message"]["content"] == "Echo: during the outage"
    finally:
        subprocess.run(REDIS_START, check=True, timeout=30, capture_output=True)
        _wait_ping(local_redis, up=True)

    for reader in readers:
        reader.join(30)
    for payloads in results:
        assert payloads[-1] == "[DONE]"
        text = "".join((orjson.loads(p)["choices"] or [{}])[0].get("delta", {}).get("content") or "" for p in payloads[:-1])
        assert text == "".join(pieces)
    runs = [wait_finished(r.pk) for r in Run.objects.all()]
    assert len(runs) == streams + 1, "one Run per request, none lost"
    assert {r.status for r in runs} == {RunStatus.SUCCEEDED}

    # Playground was not restarted: the channel layer and the cache reconnect by themselves.
    assert _channel_roundtrip() == "still here"
    after = httpx.get(f"{v1_url}/models", headers=auth, timeout=20)
    assert after.status_code == 200
