"""Provider API keys never appear in any response, page, log line or exception report.

A provider is created with a distinctive key (and the upstream is told to require it).
Then every page of the app is fetched as its owner with objects created, /v1 is used
(successes and every kind of failure, including an upstream that echoes the key back in
its error and an exception inside the provider), the log is captured at DEBUG, and
Django's exception reporter renders a forced error: the key (or a telling part of it)
must be in none of them. The masked hint (sk-...tail) is allowed: it is what the
settings page shows so a person can recognise a key.
"""
from __future__ import annotations

import logging
import sys

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client, RequestFactory
from django.urls import reverse
from django.views.debug import ExceptionReporter

from apps.proxy.errors import ProxyError
from apps.proxy.models import Provider, Run
from tests.isolation_factories import KWARG_FACTORIES
from tests.security.test_access_walks import all_urls
from tests.upstream import Reply, chat_chunks

KEY = "sk-proj-CANARY7Q2W9E4R5T6Y-shouldneverleak-9z8x"
# Any of these in an output means the key (or enough of it to matter) leaked.
FRAGMENTS = (KEY, "CANARY7Q2W9E4R5T6Y", "shouldneverleak", "sk-secret-isolation", "secret-isolation")

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


def assert_no_key(text: str | bytes, where: str) -> None:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    for fragment in FRAGMENTS:
        assert fragment not in text, f"the API key ({fragment!r}) leaked into {where}"


@pytest.fixture
def keyed(team, owner, upstream):
    """Acme's provider with the distinctive key; the upstream accepts only that key."""
    from apps.proxy.services import provider_save

    upstream.api_key = KEY
    return provider_save(team=team, user=owner, name="Keyed", base_url=upstream.url, api_key=KEY)


@pytest.fixture
def debug_logs(caplog):
    """Everything logged, at DEBUG, including the HTTP client libraries."""
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "apps", "django", "daphne", "uvicorn"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def _all_log_text(caplog) -> str:
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        if record.exc_info:
            import traceback

            parts.append("".join(traceback.format_exception(*record.exc_info)))
    return "\n".join(parts) + caplog.text


async def _stream_once(team, user, provider):
    from apps.proxy import services

    stream = await services.stream_start(team=team, user=user, provider=provider, request=CHAT)
    try:
        async with stream:
            async for _ in stream:
                pass
    except ProxyError as exc:
        return stream, exc
    return stream, None


# -- every page ---------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_no_page_shows_the_key(team, owner, owner_client, keyed, upstream, debug_logs):
    # Runs that succeeded and failed, so the run lists and details have something to show.
    async_to_sync(_stream_once)(team, owner, keyed)
    upstream.script("POST /v1/chat/completions", Reply.error(500, "upstream exploded"))
    async_to_sync(_stream_once)(team, owner, keyed)

    fetched = 0
    objects: dict[str, object] = {}  # one object of each kind, shared by the URLs that take it
    for name, kwargs in all_urls():
        if name.startswith("v1:"):
            continue
        for kw in kwargs:
            if kw not in objects:
                objects[kw] = KWARG_FACTORIES[kw](team, owner)
        url = reverse(name, kwargs={kw: objects[kw] for kw in kwargs})
        response = owner_client.get(url)
        content = b"".join(response.streaming_content) if response.streaming else response.content
        assert_no_key(content, f"GET {url} ({name})")
        assert_no_key(str(dict(response.headers)), f"the headers of GET {url}")
        fetched += 1
    assert fetched > 10
    # The provider's own pages, where the key was typed in.
    for url in (reverse("proxy:providers"), reverse("proxy:provider_edit", kwargs={"provider_id": keyed.pk})):
        page = owner_client.get(url)
        assert page.status_code == 200
        assert_no_key(page.content, url)
    assert keyed.key_hint.encode() in owner_client.get(reverse("proxy:providers")).content  # the hint is shown
    test = owner_client.post(reverse("proxy:provider_test", kwargs={"provider_id": keyed.pk}))
    assert test.status_code == 200
    assert_no_key(test.content, "the provider test result")
    assert_no_key(_all_log_text(debug_logs), "the log")


@pytest.mark.django_db(transaction=True)
def test_admin_pages_do_not_show_the_key(team, keyed, upstream):
    admin = get_user_model().objects.create_superuser("root", password="a-long-test-password")
    client = Client()
    client.force_login(admin)
    async_to_sync(_stream_once)(team, admin, keyed)
    run = Run.objects.latest("id")
    for url in ("/admin/proxy/provider/", f"/admin/proxy/provider/{keyed.pk}/change/",
                "/admin/proxy/run/", f"/admin/proxy/run/{run.pk}/change/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert_no_key(response.content, url)


def test_the_key_saved_through_the_form_is_not_echoed_back(db, team, owner, owner_client, upstream):
    """Saving with a form error (a bad URL) renders the form again: the password field stays empty."""
    page = owner_client.post(reverse("proxy:provider_new"), {"name": "Typed", "base_url": "not a url", "api_key": KEY,
                                                             "auth_style": "bearer", "enabled": "on"})
    assert page.status_code == 200 and b"Enter a valid URL" in page.content
    assert_no_key(page.content, "the provider form shown again after an error")


# -- /v1 ----------------------------------------------------------------------------------------

@pytest.fixture
def v1(live_asgi, team, owner, keyed):
    from apps.accounts.services import api_token_create

    cache.clear()
    raw = api_token_create(user=owner, team=team, name="secrets")[1]
    return live_asgi.url + "/v1", {"authorization": f"Bearer {raw}"}


@pytest.mark.django_db(transaction=True)
def test_v1_answers_and_errors_never_carry_the_key(v1, upstream, debug_logs):
    url, auth = v1
    outputs: list[tuple[str, str]] = []

    def record(label, response):
        outputs.append((label, response.text + str(dict(response.headers))))
        return response

    record("models", httpx.get(f"{url}/models", headers=auth, timeout=20))
    record("chat", httpx.post(f"{url}/chat/completions", headers=auth, json=CHAT, timeout=20))
    with httpx.stream("POST", f"{url}/chat/completions", headers=auth, json={**CHAT, "stream": True}, timeout=20) as r:
        outputs.append(("chat stream", "".join(r.iter_text())))
    record("embeddings", httpx.post(f"{url}/embeddings", headers=auth, json={"model": "text-embedding-3-small", "input": "x"}, timeout=20))

    # Failures: an upstream that echoes the key in its error (some proxies do), 500, 429,
    # a stream that breaks, a malformed stream event.
    upstream.script("POST /v1/chat/completions", Reply.error(401, f"Incorrect API key provided: {KEY}. You can find your key at ...", code="invalid_api_key"))
    record("401 echo", httpx.post(f"{url}/chat/completions", headers=auth, json=CHAT, timeout=20))
    upstream.script("POST /v1/chat/completions", Reply.error(400, f"Bad request for key {KEY}"))
    record("400 echo", httpx.post(f"{url}/chat/completions", headers=auth, json=CHAT, timeout=20))
    upstream.script("POST /v1/chat/completions", Reply.error(500, f"internal error, auth header was Bearer {KEY}"))
    record("500 echo", httpx.post(f"{url}/chat/completions", headers=auth, json=CHAT, timeout=20))
    upstream.script("POST /v1/chat/completions", Reply.stream([*chat_chunks(["a"])[:2], {"error": {"message": f"key {KEY} revoked"}}]))
    with httpx.stream("POST", f"{url}/chat/completions", headers=auth, json={**CHAT, "stream": True}, timeout=20) as r:
        outputs.append(("mid-stream error echo", "".join(r.iter_text())))
    upstream.script("POST /v1/chat/completions", Reply.stream(["not json " + KEY]))
    record("malformed event", httpx.post(f"{url}/chat/completions", headers=auth, json=CHAT, timeout=20))
    upstream.api_key = "sk-something-else"  # the key is now wrong: the upstream's plain 401
    record("401", httpx.post(f"{url}/chat/completions", headers=auth, json=CHAT, timeout=20))

    assert any("Incorrect API key provided" in text for _, text in outputs), "the echo reached the caller (redacted)"
    for label, text in outputs:
        assert_no_key(text, f"the /v1 answer ({label})")
    for run in Run.objects.all():
        assert_no_key(f"{run.error} {run.output} {run.output_text} {run.params} {run.input}", f"Run {run.pk}")
    assert_no_key(_all_log_text(debug_logs), "the log")


# -- an exception inside the provider, and Django's exception report -------------------------------

@pytest.fixture
def broken_http_client(monkeypatch):
    """The HTTP library fails in a way Playground does not expect, deep inside the call to
    the provider, with the request headers (and so the key) in the frames' variables."""
    async def send(self, request, **kwargs):
        raise RuntimeError("the connection pool is in a bad state")

    monkeypatch.setattr(httpx.AsyncClient, "send", send)


@pytest.mark.django_db(transaction=True)
def test_exception_inside_the_provider_is_reported_without_the_key(team, owner, keyed, debug_logs, broken_http_client):
    stream, error = async_to_sync(_stream_once)(team, owner, keyed)
    assert error is not None and error.code == "internal_error"
    assert "RuntimeError" in error.message
    assert_no_key(error.message, "the error message")
    assert_no_key(Run.objects.get(pk=stream.run.pk).error, "the Run's error")
    assert_no_key(_all_log_text(debug_logs), "the log (with the traceback)")

    request = RequestFactory().post("/settings/providers/new/", {"name": "x", "api_key": KEY, "extra_headers": f"X-Key: {KEY}"})
    request.user = owner
    reporter = ExceptionReporter(request, type(error), error, error.__traceback__)
    text, html = reporter.get_traceback_text(), reporter.get_traceback_html()
    assert "RuntimeError" in text and "open_response" in html  # the report does reach the HTTP frames
    assert_no_key(text, "the exception report (text)")
    assert_no_key(html, "the exception report (HTML, with local variables)")


@pytest.mark.django_db(transaction=True)
def test_debug_500_page_of_a_failing_view_does_not_show_the_key(team, owner, keyed, settings, debug_logs, broken_http_client):
    """A page that fails while talking to the provider, with DEBUG on: the technical 500
    page (and the logged report) keep the key out."""
    settings.DEBUG = True
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    response = client.post(reverse("proxy:provider_test", kwargs={"provider_id": keyed.pk}))
    assert response.status_code == 500 and b"RuntimeError" in response.content
    assert_no_key(response.content, "the DEBUG 500 page")
    assert_no_key(_all_log_text(debug_logs), "the log")


@pytest.mark.django_db
def test_header_that_cannot_be_sent_is_a_clear_error_not_a_500(team, owner, owner_client, keyed):
    Provider.objects.filter(pk=keyed.pk).update(extra_headers={"X-Team": "Caf\u00e9"})
    page = owner_client.post(reverse("proxy:provider_test", kwargs={"provider_id": keyed.pk}))
    assert page.status_code == 200
    assert b"cannot be sent" in page.content and b"extra headers" in page.content
    assert_no_key(page.content, "the provider test result")


def test_exception_reporter_cleanses_keys_in_local_variables(settings):
    """Any frame's variables named like secrets or holding request headers are hidden."""
    def call_upstream(api_key: str, headers: dict[str, str]):
        raise RuntimeError("boom")

    try:
        call_upstream(KEY, {"authorization": f"Bearer {KEY}", "api-key": KEY})
    except RuntimeError:
        exc_type, exc, tb = sys.exc_info()
    html = ExceptionReporter(None, exc_type, exc, tb).get_traceback_html()
    assert "call_upstream" in html
    assert_no_key(html, "the exception report's local variables")


@pytest.mark.django_db
def test_the_key_is_stored_encrypted(keyed):
    """Not in any column of the provider's row, in clear: a database dump does not give it away."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM proxy_provider WHERE id = %s", [keyed.pk])
        row = cursor.fetchone()
    assert_no_key(" ".join(str(value) for value in row), "the provider's database row")
    assert Provider.objects.get(pk=keyed.pk).get_api_key() == KEY  # and it still decrypts
