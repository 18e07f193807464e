"""One parametrised walk over every URL: anonymous, viewer and CSRF.

- With no login, every page redirects to sign-in (or answers 401/403/404/405), never 200.
- A viewer can read but not write: every POST answers 403 unless the URL is a read-only
  action or a personal setting listed in VIEWER_MAY_POST.
- Every POST without a CSRF token is refused (403), except the token-authenticated /v1.
Objects in URLs are created in the viewer's own team, so these walks test roles, not
team isolation (tests/test_team_isolation.py does that).
"""
from __future__ import annotations

import pytest
from django.test import Client
from django.urls import get_resolver, reverse

from tests.isolation_factories import KWARG_FACTORIES
from tests.test_team_isolation import _walk

PUBLIC = {
    "home": "redirects to setup or sign in",
    "healthz": "health check for load balancers",
    "accounts:login": "sign in",
    "accounts:logout": "sign out",
    "accounts:setup": "first run only, needs its signed token",
}
PUBLIC_PREFIXES = ("share:",)  # signed share links, tested in apps/prompts
SKIP_PREFIXES = ("admin:",)
# POSTs a viewer may make: reading tools and personal settings.
VIEWER_MAY_POST = {
    "accounts:team_switch", "accounts:api_tokens", "accounts:api_token_revoke", "accounts:team_create",
    "proxy:tokenizer", "proxy:token_count", "accounts:logout",
}


def all_urls():
    out = {}
    for name, kwargs in _walk(get_resolver().url_patterns):
        if name.startswith(SKIP_PREFIXES):
            continue
        out[name] = kwargs
    return sorted(out.items())


def _url(name, kwargs, team, user):
    return reverse(name, kwargs={kw: KWARG_FACTORIES[kw](team, user) for kw in kwargs})


@pytest.mark.django_db
@pytest.mark.parametrize("name,kwargs", all_urls(), ids=[n for n, _ in all_urls()])
def test_anonymous_cannot_reach(name, kwargs, team, owner, client):
    if name in PUBLIC or name.startswith(PUBLIC_PREFIXES):
        pytest.skip(PUBLIC.get(name, "public by design"))
    url = _url(name, kwargs, team, owner)
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        if name.startswith("v1:"):
            # 405 for a method the endpoint does not have, 404 for a path /v1 does not have.
            expected = (404,) if name == "v1:not_found" else (401, 405)
            assert response.status_code in expected, f"{method.upper()} {url}"
            if response.status_code != 401:
                continue
            assert response.json()["error"]["type"] == "authentication_error"
            continue
        assert response.status_code in (302, 401, 403, 404, 405), f"{method.upper()} {url} answered {response.status_code}"
        if response.status_code == 302:
            assert "/accounts/login/" in response["Location"], f"{url} redirected to {response['Location']}"


@pytest.mark.django_db
@pytest.mark.parametrize("name,kwargs", all_urls(), ids=[n for n, _ in all_urls()])
def test_viewer_cannot_write(name, kwargs, team, owner, viewer_client):
    if name in PUBLIC or name.startswith(PUBLIC_PREFIXES) or name in VIEWER_MAY_POST or name.startswith("v1:"):
        pytest.skip("not a team write")
    url = _url(name, kwargs, team, owner)
    response = viewer_client.post(url)
    assert response.status_code in (403, 405), f"a viewer's POST {url} ({name}) answered {response.status_code}"


@pytest.mark.django_db
@pytest.mark.parametrize("name,kwargs", all_urls(), ids=[n for n, _ in all_urls()])
def test_post_without_csrf_token_is_refused(name, kwargs, team, owner):
    if name.startswith("v1:"):
        pytest.skip("token-authenticated API, no cookies")
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post(_url(name, kwargs, team, owner))
    assert response.status_code in (403, 405), f"POST {name} without a CSRF token answered {response.status_code}"
