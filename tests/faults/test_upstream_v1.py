"""Upstream faults seen through /v1: 429 storms, 500s, stalls, dropped streams, DNS failure.

Each test calls /v1 over real HTTP (the live ASGI server) against the scripted test
upstream, then checks the answer the caller got and the Run the database kept.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest

from apps.proxy.models import Run, RunSource, RunStatus
from tests.faults.conftest import CHAT, last_run, sse_events, wait_finished
from tests.upstream import Reply, chat_chunks

pytestmark = pytest.mark.django_db(transaction=True)


def _post(v1_url, auth, body, *, timeout=20.0):
    started = time.monotonic()
    response = httpx.post(f"{v1_url}/chat/completions", headers=auth, json=body, timeout=timeout)
    return response, time.monotonic() - started


def _stream(v1_url, auth, body, *, timeout=20.0) -> tuple[int, list[str], dict]:
    """(status, SSE data payloads, headers) of a streamed call, read to the end."""
    with httpx.Client(timeout=timeout) as http:
        with http.stream("POST", f"{v1_url}/chat/completions", headers=auth, json={**body, "stream": True}) as response:
            if response.status_code != 200:
                response.read()
                return response.status_code, [response.text], dict(response.headers)
            return 200, sse_events(response.iter_lines()), dict(response.headers)


# -- 429 storms --------------------------------------------------------------------------------

def test_429_storm_every_request_honours_retry_after_then_says_rate_limited(v1_url, auth, upstream, settings):
    """Many concurrent callers, all rate limited on every attempt: each waits as asked
    (within the cap), then gets a 429 that says it was rate limited and for how long."""
    settings.UPSTREAM_MAX_RETRIES = 2
    settings.UPSTREAM_MAX_RETRY_AFTER = 1.0
    callers = 12
    attempts = settings.UPSTREAM_MAX_RETRIES + 1
    upstream.script("POST /v1/chat/completions",
                    *[Reply.error(429, "Rate limit reached for gpt-4o-mini", headers={"retry-after": "0.05"})] * (callers * attempts))

    def call(i):
        body = {**CHAT, "messages": [{"role": "user", "content": f"caller {i}"}]}
        if i % 2:
            status, payloads, headers = _stream(v1_url, auth, body)
            return status, orjson.loads(payloads[0]), headers, None
        response, elapsed = _post(v1_url, auth, body)
        return response.status_code, response.json(), response.headers, elapsed

    with ThreadPoolExecutor(max_workers=callers) as pool:
        results = list(pool.map(call, range(callers)))

    for status, body, headers, elapsed in results:
        assert status == 429, body
        error = body["error"]
        assert error["code"] == "rate_limited" and error["type"] == "rate_limit_error"
        assert "rate limiting" in error["message"] and "It asked to wait 0.05 s" in error["message"]
        assert headers["retry-after"] == "1"  # whole seconds, rounded up, for the caller's own backoff
        if elapsed is not None:
            assert elapsed >= (attempts - 1) * 0.05  # Retry-After was honoured between attempts
    assert len(upstream.requests_to("/v1/chat/completions")) == callers * attempts
    runs = list(Run.objects.filter(source=RunSource.API))
    assert len(runs) == callers, "one Run per request, not one per attempt"
    for run in runs:
        run = wait_finished(run.pk)
        assert run.status == RunStatus.FAILED and run.error_code == "rate_limited"
        assert "It asked to wait 0.05 s" in run.error and run.output_text == ""


def test_429_storm_that_passes_succeeds_for_everyone(v1_url, auth, upstream, settings):
    callers = 10
    # The 429s are shared out among callers in arrival order: allow enough attempts that
    # whoever gets the most of them still gets through.
    settings.UPSTREAM_MAX_RETRIES = callers * 2
    upstream.script("POST /v1/chat/completions",
                    *[Reply.error(429, "Slow down", headers={"retry-after-ms": "20"})] * (callers * 2))
    with ThreadPoolExecutor(max_workers=callers) as pool:
        responses = list(pool.map(lambda i: _post(v1_url, auth, {**CHAT, "messages": [{"role": "user", "content": f"n{i}"}]})[0], range(callers)))
    assert [r.status_code for r in responses] == [200] * callers
    assert sorted(r.json()["choices"][0]["message"]["content"] for r in responses) == sorted(f"Echo: n{i}" for i in range(callers))
    runs = Run.objects.filter(source=RunSource.API)
    assert runs.count() == callers
    assert {wait_finished(r.pk).status for r in runs} == {RunStatus.SUCCEEDED}


def test_retry_after_beyond_the_cap_is_not_waited_for(v1_url, auth, upstream, settings):
    """An upstream asking for 2 minutes is not waited on: the caller hears so at once."""
    settings.UPSTREAM_MAX_RETRY_AFTER = 1.0
    upstream.script("POST /v1/chat/completions", Reply.error(429, "Quota exceeded", headers={"retry-after": "120"}))
    response, elapsed = _post(v1_url, auth, CHAT)
    assert response.status_code == 429 and elapsed < 1.0
    assert "It asked to wait 120 s" in response.json()["error"]["message"]
    assert response.headers["retry-after"] == "120"
    assert len(upstream.requests_to("/v1/chat/completions")) == 1
    run = wait_finished(last_run().pk)
    assert run.status == RunStatus.FAILED and "120 s" in run.error


# -- 500s ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("streaming", [False, True], ids=["json", "stream"])
def test_upstream_500_is_a_502_that_names_the_upstream_failure(v1_url, auth, upstream, streaming):
    upstream.script("POST /v1/chat/completions", Reply.error(500, "The server had an error while processing your request"))
    if streaming:
        status, payloads, _ = _stream(v1_url, auth, CHAT)
        error = orjson.loads(payloads[0])["error"]
    else:
        response, _ = _post(v1_url, auth, CHAT)
        status, error = response.status_code, response.json()["error"]
    assert status == 502
    assert error["code"] == "upstream_unavailable"
    assert "Test upstream failed with HTTP 500" in error["message"] and "had an error" in error["message"]
    assert len(upstream.requests_to("/v1/chat/completions")) == 1, "a 500 is not retried"
    run = wait_finished(last_run().pk)
    assert run.status == RunStatus.FAILED and "HTTP 500" in run.error and run.provider_name == "Test upstream"


def test_502_and_503_are_retried_and_the_run_succeeds(v1_url, auth, upstream):
    upstream.script("POST /v1/chat/completions", Reply.error(502, "bad gateway"), Reply.error(503, "overloaded"))
    status, payloads, _ = _stream(v1_url, auth, CHAT)
    assert status == 200 and payloads[-1] == "[DONE]"
    text = "".join((orjson.loads(p)["choices"] or [{}])[0].get("delta", {}).get("content") or "" for p in payloads[:-1])
    assert text == "Echo: Say hello"
    assert len(upstream.requests_to("/v1/chat/completions")) == 3
    run = wait_finished(last_run().pk)
    assert run.status == RunStatus.SUCCEEDED and run.output_text == "Echo: Say hello"
    assert Run.objects.count() == 1


# -- stalls past the read timeout ---------------------------------------------------------------

def test_stall_before_the_first_chunk_is_a_504(v1_url, auth, upstream, settings):
    settings.UPSTREAM_READ_TIMEOUT = 0.3
    upstream.script("POST /v1/chat/completions", Reply.stream(chat_chunks(["never"]), stall_after=0, stall_seconds=5))
    status, payloads, _ = _stream(v1_url, auth, CHAT)
    assert status == 504
    error = orjson.loads(payloads[0])["error"]
    assert error["code"] == "timeout" and "stopped sending for more than 0.3 s" in error["message"]
    assert upstream.wait_for_disconnect(), "the stalled upstream request must be closed"
    run = wait_finished(last_run().pk)
    assert run.status == RunStatus.FAILED and run.error_code == "timeout" and run.output_text == ""


def test_stall_mid_stream_ends_with_an_error_event_and_keeps_the_partial_answer(v1_url, auth, upstream, settings):
    settings.UPSTREAM_READ_TIMEOUT = 0.3
    upstream.script("POST /v1/chat/completions",
                    Reply.stream(chat_chunks(["The", " answer", " is", " lost"]), stall_after=4, stall_seconds=5))
    status, payloads, _ = _stream(v1_url, auth, CHAT)
    assert status == 200
    assert payloads[-1] == "[DONE]"
    error = orjson.loads(payloads[-2])["error"]
    assert error["code"] == "timeout" and "stopped sending" in error["message"]
    run = wait_finished(last_run().pk)
    assert run.status == RunStatus.FAILED
    assert run.output_text == "The answer is"
    assert "stopped sending for more than 0.3 s" in run.error


def test_stall_without_streaming_is_a_504_and_the_partial_answer_is_kept(v1_url, auth, upstream, settings):
    settings.UPSTREAM_READ_TIMEOUT = 0.3
    upstream.script("POST /v1/chat/completions", Reply.stream(chat_chunks(["half", " of", " it"]), stall_after=3, stall_seconds=5))
    response, elapsed = _post(v1_url, auth, CHAT)
    assert response.status_code == 504 and elapsed < 3
    assert "stopped sending" in response.json()["error"]["message"]
    run = wait_finished(last_run().pk)
    assert run.status == RunStatus.FAILED and run.output_text == "half of"


# -- dropped streams ------------------------------------------------------------------------------

def test_connection_dropped_before_any_chunk_is_a_502(v1_url, auth, upstream):
    upstream.script("POST /v1/chat/completions", Reply.stream(chat_chunks(["x"]), drop_after=0))
    status, payloads, _ = _stream(v1_url, auth, CHAT)
    assert status == 502
    error = orjson.loads(payloads[0])["error"]
    assert "closed the connection" in error["message"] or "ended the stream" in error["message"]
    run = wait_finished(last_run().pk)
    assert run.status == RunStatus.FAILED and run.error


def test_dropped_stream_without_streaming_keeps_the_partial_answer(v1_url, auth, upstream):
    upstream.script("POST /v1/chat/completions", Reply.stream(chat_chunks(["kept", " text", " gone"]), drop_after=3))
    response, _ = _post(v1_url, auth, CHAT)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "stream_interrupted" and "closed the connection" in error["message"]
    run = wait_finished(last_run().pk)
    assert run.status == RunStatus.FAILED and run.output_text == "kept text"
    assert run.error_code == "stream_interrupted"


def test_stream_that_ends_without_finishing_says_so(v1_url, auth, upstream):
    """The upstream ends the HTTP response cleanly but the answer had no finish_reason."""
    upstream.script("POST /v1/chat/completions", Reply.stream(chat_chunks(["cut", " short"], finish_reason=None), done=False))
    status, payloads, _ = _stream(v1_url, auth, CHAT)
    assert status == 200 and payloads[-1] == "[DONE]"
    assert "ended the stream before the answer was complete" in orjson.loads(payloads[-2])["error"]["message"]
    run = wait_finished(last_run().pk)
    assert run.status == RunStatus.FAILED and run.output_text == "cut short"


# -- DNS failure -----------------------------------------------------------------------------------

@pytest.fixture
def unresolvable(team, owner):
    """A provider whose host cannot resolve (.invalid never does, and never leaves the machine)."""
    from apps.proxy.services import provider_save

    return provider_save(team=team, user=owner, name="Nowhere", base_url="http://nonexistent.invalid/v1", api_key="sk-nowhere")


def test_dns_failure_leaves_other_providers_usable_and_names_the_broken_one(v1_url, auth, upstream, unresolvable):
    models = httpx.get(f"{v1_url}/models", headers=auth, timeout=20)
    assert models.status_code == 200
    assert "gpt-4o-mini" in {m["id"] for m in models.json()["data"]}  # the working provider still lists
    response, _ = _post(v1_url, auth, {**CHAT, "model": "Nowhere/gpt-4o-mini"})
    assert response.status_code == 404
    assert "not reachable: Nowhere" in response.json()["error"]["message"]
    ok, _ = _post(v1_url, auth, CHAT)
    assert ok.status_code == 200


def test_dns_failure_recorded_on_the_run_and_shown_by_test_connection(team, owner, owner_client, unresolvable):
    from asgiref.sync import async_to_sync

    from apps.proxy import services
    from apps.proxy.errors import ProxyError

    async def run_once():
        stream = await services.stream_start(team=team, user=owner, provider=unresolvable, request=CHAT)
        try:
            async with stream:
                async for _ in stream:
                    pass
        except ProxyError as exc:
            return stream, exc
        return stream, None

    stream, error = async_to_sync(run_once)()
    assert error is not None and error.code == "dns_error"
    assert "Cannot resolve the host of Nowhere (http://nonexistent.invalid/v1/chat/completions)" in error.message
    run = Run.objects.get(pk=stream.run.pk)
    assert run.status == RunStatus.FAILED and run.error_code == "dns_error" and "Check the base URL" in run.error

    page = owner_client.post(f"/settings/providers/{unresolvable.pk}/test/")
    assert page.status_code == 200
    assert b"Cannot resolve the host of Nowhere" in page.content


# -- one-shot calls (embeddings: the call_recorded path) ---------------------------------------------

def test_429_storm_on_embeddings_says_rate_limited_and_records_each_run(v1_url, auth, upstream, settings):
    settings.UPSTREAM_MAX_RETRIES = 1
    callers = 6
    upstream.script("POST /v1/embeddings", *[Reply.error(429, "Too many embeddings", headers={"retry-after": "0.02"})] * (callers * 2))

    def call(i):
        return httpx.post(f"{v1_url}/embeddings", headers=auth, json={"model": "text-embedding-3-small", "input": f"text {i}"}, timeout=20)

    with ThreadPoolExecutor(max_workers=callers) as pool:
        responses = list(pool.map(call, range(callers)))
    for response in responses:
        assert response.status_code == 429
        assert "rate limiting" in response.json()["error"]["message"] and "0.02 s" in response.json()["error"]["message"]
    runs = [wait_finished(r.pk) for r in Run.objects.filter(capability="embeddings")]
    assert len(runs) == callers and {r.status for r in runs} == {RunStatus.FAILED}
    assert all(r.error_code == "rate_limited" for r in runs)


def test_embeddings_upstream_500_is_a_clear_502(v1_url, auth, upstream):
    upstream.script("POST /v1/embeddings", Reply.error(500, "embedding backend crashed"))
    response = httpx.post(f"{v1_url}/embeddings", headers=auth, json={"model": "text-embedding-3-small", "input": "x"}, timeout=20)
    assert response.status_code == 502 and "HTTP 500" in response.json()["error"]["message"]
    run = wait_finished(last_run(capability="embeddings").pk)
    assert run.status == RunStatus.FAILED and "embedding backend crashed" in run.error
