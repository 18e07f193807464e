"""The proxy service against the test upstream over real HTTP: every fault the issue lists."""
from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from apps.proxy import services
from apps.proxy.errors import ProxyError
from apps.proxy.models import Run, RunStatus
from tests.upstream import Reply, chat_chunks

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}


async def _run(team, owner, provider, request=CHAT):
    stream = await services.stream_start(team=team, user=owner, provider=provider, request=request)
    events = []
    error = None
    try:
        async with stream:
            async for event in stream:
                events.append(event)
    except ProxyError as exc:
        error = exc
    run = await sync_to_async(Run.objects.get)(pk=stream.run.pk)
    return stream, run, error


async def test_stream_records_run_with_usage_cost_and_timing(team, owner, upstream_provider, upstream):
    upstream.script("POST /v1/chat/completions", Reply.stream(chat_chunks(["Hel", "lo", "!"], usage={"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12})))
    stream, run, error = await _run(team, owner, upstream_provider)
    assert error is None
    assert stream.acc.text() == "Hello!"
    assert run.status == RunStatus.SUCCEEDED
    assert run.output_text == "Hello!"
    assert (run.prompt_tokens, run.completion_tokens, run.total_tokens) == (9, 3, 12)
    assert not run.usage_counted
    # gpt-4o-mini: $0.15 in, $0.60 out per 1M tokens
    assert float(run.cost) == pytest.approx(9 * 0.15e-6 + 3 * 0.60e-6, abs=1e-6)
    assert run.ttft_ms is not None and run.total_ms >= run.ttft_ms
    sent = upstream.requests_to("/v1/chat/completions")[0]
    assert sent.json["stream"] is True and sent.json["stream_options"] == {"include_usage": True}
    assert sent.headers["authorization"] == "Bearer sk-test-key-1234"


async def test_usage_counted_when_upstream_omits_it(team, owner, upstream_provider, upstream):
    upstream.script("POST /v1/chat/completions", Reply.stream(chat_chunks([" token", "ization"])))
    _, run, _ = await _run(team, owner, upstream_provider)
    assert run.usage_counted
    assert run.completion_tokens == 2  # " tokenization" is 2 tokens in o200k_base
    assert run.prompt_tokens > 0


async def test_wrong_key_says_so(team, owner, upstream_provider, upstream):
    upstream.api_key = "sk-the-right-one"
    _, run, error = await _run(team, owner, upstream_provider)
    assert error.code == "invalid_api_key"
    assert "rejected the API key" in error.message and "Settings -> Providers" in error.message
    assert run.status == RunStatus.FAILED and "rejected the API key" in run.error


async def test_429_then_success_honours_retry_after(team, owner, upstream_provider, upstream):
    upstream.script("POST /v1/chat/completions", Reply.error(429, "Slow down", headers={"retry-after": "0.05"}))
    _, run, error = await _run(team, owner, upstream_provider)
    assert error is None and run.status == RunStatus.SUCCEEDED
    assert len(upstream.requests_to("/v1/chat/completions")) == 2


async def test_500_three_times_is_not_retried_and_explained(team, owner, upstream_provider, upstream):
    upstream.script("POST /v1/chat/completions", *[Reply.error(500, "boom")] * 3)
    _, run, error = await _run(team, owner, upstream_provider)
    assert error.code == "upstream_unavailable" and "HTTP 500" in error.message
    assert len(upstream.requests_to("/v1/chat/completions")) == 1
    assert run.status == RunStatus.FAILED


async def test_503_retried_until_attempts_run_out(team, owner, upstream_provider, upstream, settings):
    settings.UPSTREAM_MAX_RETRIES = 2
    upstream.script("POST /v1/chat/completions", *[Reply.error(503, "overloaded")] * 3)
    _, _, error = await _run(team, owner, upstream_provider)
    assert error.code == "upstream_unavailable"
    assert len(upstream.requests_to("/v1/chat/completions")) == 3


async def test_stall_past_read_timeout_keeps_partial_output(team, owner, upstream_provider, upstream, settings):
    settings.UPSTREAM_READ_TIMEOUT = 0.3
    upstream.script("POST /v1/chat/completions", Reply.stream(chat_chunks(["partial", " answer", " never"]), stall_after=3, stall_seconds=5))
    _, run, error = await _run(team, owner, upstream_provider)
    assert error.code == "timeout" and "stopped sending" in error.message
    assert run.status == RunStatus.FAILED
    assert run.output_text == "partial answer"


async def test_dropped_stream_keeps_partial_output(team, owner, upstream_provider, upstream):
    upstream.script("POST /v1/chat/completions", Reply.stream(chat_chunks(["first", " second", " third"]), drop_after=3))
    _, run, error = await _run(team, owner, upstream_provider)
    assert error.code == "stream_interrupted"
    assert "closed the connection" in error.message
    assert run.status == RunStatus.FAILED
    assert run.output_text == "first second"


async def test_malformed_sse_line_fails_clearly(team, owner, upstream_provider, upstream):
    chunks = chat_chunks(["ok", " then"])
    upstream.script("POST /v1/chat/completions", Reply.stream([chunks[0], chunks[1], "{not json", chunks[2]]))
    _, run, error = await _run(team, owner, upstream_provider)
    assert error.code == "bad_response" and "malformed" in error.message
    assert run.output_text == "ok" and run.status == RunStatus.FAILED


async def test_cancelled_consumer_leaves_cancelled_run_with_partial(team, owner, upstream_provider, upstream):
    upstream.script("POST /v1/chat/completions", Reply.stream(chat_chunks(["a", "b", "c", "d"]), stall_after=2, stall_seconds=5))
    async with await services.stream_start(team=team, user=owner, provider=upstream_provider, request=CHAT) as stream:
        async for event in stream:
            if stream.acc.text() == "a":
                break  # the consumer stops reading (Stop button, closed tab)
    run = await sync_to_async(Run.objects.get)(pk=stream.run.pk)
    assert run.status == RunStatus.CANCELLED and run.output_text == "a"
    assert upstream.wait_for_disconnect(), "the upstream request must be closed"


async def test_unreachable_base_url(team, owner):
    provider = await sync_to_async(services.provider_save)(team=team, user=owner, name="Nowhere", base_url="http://127.0.0.1:9", api_key="sk-x")
    _, run, error = await _run(team, owner, provider)
    assert error.code == "upstream_unavailable" and "Cannot connect" in error.message


async def test_html_page_instead_of_api(team, owner, upstream_provider, upstream):
    upstream.script("GET /v1/models", Reply(status=200, body=b"<!doctype html><html>Welcome</html>", content_type="text/html"))
    with pytest.raises(ProxyError) as info:
        await services.provider_test(provider=upstream_provider)
    assert "OpenAI-compatible" in info.value.message


async def test_empty_key_is_rejected_by_upstream(team, owner, upstream):
    upstream.api_key = "sk-needed"
    provider = await sync_to_async(services.provider_save)(team=team, user=owner, name="No key", base_url=upstream.url)
    with pytest.raises(ProxyError) as info:
        await services.provider_test(provider=provider)
    assert info.value.code == "invalid_api_key"
    assert "authorization" not in upstream.requests[-1].headers


async def test_upstream_error_mid_stream(team, owner, upstream_provider, upstream):
    chunks = chat_chunks(["so", " far"])
    upstream.script("POST /v1/chat/completions", Reply.stream([chunks[1], chunks[2], {"error": {"message": "server overloaded", "code": "overloaded"}}]))
    _, run, error = await _run(team, owner, upstream_provider)
    assert "server overloaded" in error.message
    assert run.output_text == "so far"


async def test_task_cancel_mid_stream_closes_upstream(team, owner, upstream_provider, upstream):
    import asyncio

    upstream.script("POST /v1/chat/completions", Reply.stream(chat_chunks(["x", "y", "z"]), stall_after=2, stall_seconds=5))
    stream = await services.stream_start(team=team, user=owner, provider=upstream_provider, request=CHAT)

    async def consume():
        async for _ in stream:
            pass

    task = asyncio.create_task(consume())
    for _ in range(100):
        await asyncio.sleep(0.02)
        if stream.acc.text() == "x":
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    run = await sync_to_async(Run.objects.get)(pk=stream.run.pk)
    assert run.status == RunStatus.CANCELLED and run.output_text == "x"
    assert upstream.wait_for_disconnect()


async def test_streams_reuse_the_upstream_connection(team, owner, upstream_provider, upstream):
    # The body is read to its end after [DONE], so the connection goes back to the pool:
    # no new TCP (or TLS) handshake with the provider per request.
    for _ in range(3):
        stream, run, error = await _run(team, owner, upstream_provider)
        assert error is None and run.status == RunStatus.SUCCEEDED
    ports = {r.client_port for r in upstream.requests_to("/v1/chat/completions")}
    assert len(upstream.requests_to("/v1/chat/completions")) == 3
    assert len(ports) == 1


async def test_a_provider_disabled_or_repriced_is_seen_at_once_despite_the_rows_cache(team, upstream_provider, upstream):
    from apps.proxy.models import ModelPrice
    from apps.proxy.selectors import model_resolve

    provider, entry = await model_resolve(team=team, model="gpt-4o-mini", provider_id=upstream_provider.pk)
    assert provider.pk == upstream_provider.pk  # now cached for PROVIDER_CACHE_SECONDS
    await sync_to_async(ModelPrice.objects.create)(team=team, model="gpt-4o-mini", input_per_million=7, output_per_million=9)
    _, entry = await model_resolve(team=team, model="gpt-4o-mini", provider_id=upstream_provider.pk)
    assert (entry.input_price, entry.output_price) == (7, 9)
    upstream_provider.enabled = False
    await sync_to_async(upstream_provider.save)()
    with pytest.raises(ProxyError, match="does not exist in your team"):
        await model_resolve(team=team, model="gpt-4o-mini", provider_id=upstream_provider.pk)


async def test_cookies_an_upstream_sets_are_not_sent_back(team, owner, upstream_provider, upstream):
    # One pooled client serves every team: a load balancer's cookie set on one team's
    # request must not ride along on the next request to the same host (any team's).
    upstream.script(
        "POST /v1/chat/completions",
        Reply.stream(chat_chunks(["a"]), headers={"set-cookie": "lb=team-a-backend-3; Path=/"}),
        Reply.stream(chat_chunks(["b"])),
    )
    for _ in range(2):
        _, run, error = await _run(team, owner, upstream_provider)
        assert error is None and run.status == RunStatus.SUCCEEDED
    first, second = upstream.requests_to("/v1/chat/completions")
    assert first.client_port == second.client_port  # the same pooled connection
    assert "cookie" not in {k.lower() for k in second.headers}
