"""One walk over every URL the app defines: another team's objects are a 404.

For each URL pattern with parameters, the objects are created in team Acme (factories in
tests/isolation_factories.py) and the URL is requested, GET and POST, by the owner of
another team. Any answer but 404 (or 405 for a method the view does not take) fails.
"""
from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.isolation_factories import KWARG_FACTORIES, NOT_TEAM_SCOPED

SKIP_PREFIXES = ("admin:", "v1:")


def _walk(patterns, namespace=None):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace or namespace
            if ns and namespace and entry.namespace:
                ns = f"{namespace}:{entry.namespace}"
            yield from _walk(entry.url_patterns, ns)
        elif isinstance(entry, URLPattern) and entry.name:
            name = f"{namespace}:{entry.name}" if namespace else entry.name
            yield name, list(entry.pattern.regex.groupindex)  # path() and re_path() alike


def team_scoped_urls():
    seen = {}
    for name, kwargs in _walk(get_resolver().url_patterns):
        if name.startswith(SKIP_PREFIXES) or name in NOT_TEAM_SCOPED or not kwargs:
            continue
        seen[name] = kwargs
    return sorted(seen.items())


def test_every_url_kwarg_has_a_factory():
    missing = {kw for _, kwargs in team_scoped_urls() for kw in kwargs if kw not in KWARG_FACTORIES}
    assert not missing, f"add factories for {sorted(missing)} in tests/isolation_factories.py"


@pytest.mark.django_db
@pytest.mark.parametrize("name,kwargs", team_scoped_urls(), ids=[n for n, _ in team_scoped_urls()])
def test_other_team_gets_404(name, kwargs, team, owner, outsider_client):
    values = {kw: KWARG_FACTORIES[kw](team, owner) for kw in kwargs}
    url = reverse(name, kwargs=values)
    for method in ("get", "post"):
        response = getattr(outsider_client, method)(url)
        assert response.status_code in (404, 405), f"{method.upper()} {url} ({name}) answered {response.status_code} to another team"
        if response.status_code == 405:
            continue
        assert b"secret" not in response.content
