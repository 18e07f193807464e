"""Providers, prices, models and the token-count endpoint through their pages."""
from __future__ import annotations

import logging

import pytest

from apps.proxy.models import ModelPrice, Provider

pytestmark = pytest.mark.django_db(transaction=True)


def test_provider_key_is_never_sent_back(owner_client, team, caplog):
    caplog.set_level(logging.DEBUG)
    response = owner_client.post("/settings/providers/new/", {
        "name": "OpenAI", "base_url": "https://api.openai.com/v1", "api_key": "sk-proj-verysecret-XYZW",
        "auth_style": "bearer", "extra_headers": "X-Team: research", "enabled": "on",
    })
    assert response.status_code == 302
    provider = Provider.objects.get(team=team, name="OpenAI")
    assert provider.extra_headers == {"X-Team": "research"}
    for url in ("/settings/providers/", f"/settings/providers/{provider.pk}/", "/models/"):
        body = owner_client.get(url).content
        assert b"verysecret" not in body
    assert b"sk-...XYZW" in owner_client.get("/settings/providers/").content
    assert "verysecret" not in caplog.text


def test_blank_key_keeps_the_stored_one(owner_client, upstream_provider):
    owner_client.post(f"/settings/providers/{upstream_provider.pk}/", {
        "name": "Renamed", "base_url": upstream_provider.base_url, "api_key": "", "auth_style": "bearer", "enabled": "on",
    })
    upstream_provider.refresh_from_db()
    assert upstream_provider.name == "Renamed" and upstream_provider.get_api_key() == "sk-test-key-1234"


def test_bad_header_line_is_named(owner_client):
    response = owner_client.post("/settings/providers/new/", {
        "name": "X", "base_url": "http://h/v1", "auth_style": "bearer", "extra_headers": "Good: 1\nno colon here",
    })
    assert b"line 2" in response.content


@pytest.mark.parametrize("setup,expected", [
    ("bad_key", b"rejected the API key"),
    ("wrong_path", b"no such endpoint"),
    ("html", b"HTML page"),
    ("refused", b"Cannot connect"),
    ("tls", b"TLS failed"),
])
def test_test_connection_says_what_failed(owner_client, team, owner, upstream, setup, expected):
    from tests.upstream import Reply

    from apps.proxy.services import provider_save

    base = upstream.url
    if setup == "bad_key":
        upstream.api_key = "sk-other"
    elif setup == "wrong_path":
        base = upstream.base_url + "/api"
    elif setup == "html":
        upstream.script("GET /v1/models", Reply(body=b"<html><body>Login</body></html>", content_type="text/html"))
    elif setup == "refused":
        base = "http://127.0.0.1:9/v1"
    elif setup == "tls":
        base = upstream.url.replace("http://", "https://")
    provider = provider_save(team=team, user=owner, name=setup, base_url=base, api_key="sk-abc-123456")
    response = owner_client.post(f"/settings/providers/{provider.pk}/test/")
    assert response.status_code == 200
    assert expected in response.content, response.content


def test_connection_timeout_is_reported(owner_client, team, owner, settings):
    import socket

    from apps.proxy.services import provider_save

    settings.UPSTREAM_CONNECT_TIMEOUT = 0.2
    settings.UPSTREAM_READ_TIMEOUT = 0.3
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)  # accepts the TCP connection, never answers
    try:
        provider = provider_save(team=team, user=owner, name="silent", base_url=f"http://127.0.0.1:{silent.getsockname()[1]}/v1")
        response = owner_client.post(f"/settings/providers/{provider.pk}/test/")
    finally:
        silent.close()
    assert b"stopped sending" in response.content or b"Timed out" in response.content


def test_negative_price_is_refused(owner_client, team):
    response = owner_client.post("/settings/prices/", {"model": "llama-3*", "input_per_million": "-1", "output_per_million": "2"})
    assert response.status_code == 200
    assert b"greater than or equal to 0" in response.content
    assert not ModelPrice.objects.exists()


def test_team_price_overrides_catalog_and_prefix_matches(owner_client, team):
    from apps.proxy.services import price_for

    owner_client.post("/settings/prices/", {"model": "llama-3*", "input_per_million": "0.5", "output_per_million": "1.5", "context_length": "8192"})
    assert [str(p) for p in price_for(team=team, model="llama-3-8b")] == ["0.5000", "1.5000"]
    assert [str(p) for p in price_for(team=team, model="gpt-4o-2024-08-06")] == ["2.50", "10.00"]
    assert price_for(team=team, model="mystery") == (None, None)


def test_models_page_merges_metadata_and_reports_failing_provider(owner_client, team, owner, upstream_provider, upstream):
    from apps.proxy.services import provider_save

    upstream.models = ["gpt-4o-mini", "my-finetune"]
    provider_save(team=team, user=owner, name="Down", base_url="http://127.0.0.1:9/v1")
    body = owner_client.get("/models/").content.decode()
    assert "gpt-4o-mini" in body and "128000" in body and "vision" in body
    assert "my-finetune" in body and "unknown: usable" in body
    assert "Down:" in body and "Cannot connect" in body


def test_token_count_endpoint_and_context_check(owner_client, team):
    response = owner_client.post("/api/tokens/count", {"text": " tokenization", "model": "gpt-4o"})
    data = response.json()
    assert data["tokens"] == 2 and data["encoding"] == "o200k_base" and data["context_length"] == 128000
    assert data["fits"] is True

    response = owner_client.post("/api/tokens/count", {"text": "hello " * 5000, "model": "gpt-4", "max_tokens": "4000"})
    data = response.json()
    assert data["encoding"] == "cl100k_base" and data["fits"] is False
    assert "over the model's 8,192-token context window" in data["message"]

    messages = '[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]'
    data = owner_client.post("/api/tokens/count", {"messages": messages, "model": "gpt-4o"}).json()
    # OpenAI's chat formula: 3 to prime the reply + per message 3 + role + content tokens
    # ("system" 1, "Be brief." 3, "user" 1, "Hi" 1).
    assert data["tokens"] == 3 + (3 + 1 + 3) + (3 + 1 + 1)
