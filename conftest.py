"""Fixtures shared by every test: users and teams in each role, and the test upstream."""
from __future__ import annotations

import pytest

pytest_plugins = ["tests.upstream", "tests.live"]


def pytest_sessionstart(session):
    """Remove a SQLite test database left by a killed run, with its -wal and -shm files.

    Django deletes the old test database file before creating a new one, but not its
    write-ahead log: the new file opened beside a stale -shm fails with 'disk I/O error'.
    """
    from pathlib import Path

    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3") and database.get("TEST", {}).get("NAME"):
        name = database["TEST"]["NAME"]
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(name + suffix).unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def _fast_upstream_settings(settings, tmp_path):
    """Short retry backoff and read timeout so fault tests take milliseconds, not minutes."""
    settings.UPSTREAM_RETRY_BACKOFF = 0.01
    settings.UPSTREAM_READ_TIMEOUT = 2.0
    settings.UPSTREAM_CONNECT_TIMEOUT = 2.0
    settings.MEDIA_ROOT = tmp_path / "media"
    from apps.proxy import services

    services._models_cache.clear()


@pytest.fixture
def make_user(db, django_user_model):
    def make(username: str, password: str = "a-long-test-password"):
        return django_user_model.objects.create_user(username=username, password=password)

    return make


@pytest.fixture
def owner(make_user):
    return make_user("olivia")


@pytest.fixture
def team(owner):
    from apps.accounts.services import team_create

    return team_create(name="Acme", owner=owner)


def _member(team, user, role):
    from apps.accounts.models import Membership

    Membership.objects.create(team=team, user=user, role=role)
    return user


@pytest.fixture
def editor(team, make_user):
    return _member(team, make_user("edgar"), "editor")


@pytest.fixture
def viewer(team, make_user):
    return _member(team, make_user("vera"), "viewer")


@pytest.fixture
def other_team(make_user):
    from apps.accounts.services import team_create

    return team_create(name="Rival", owner=make_user("mallory"))


@pytest.fixture
def outsider(other_team):
    """The owner of another team: must never see Acme's objects."""
    return other_team.memberships.get().user


def _client_for(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def owner_client(owner, team):
    return _client_for(owner)


@pytest.fixture
def editor_client(editor):
    return _client_for(editor)


@pytest.fixture
def viewer_client(viewer):
    return _client_for(viewer)


@pytest.fixture
def outsider_client(outsider):
    return _client_for(outsider)


@pytest.fixture
def upstream_provider(team, upstream, owner):
    """An OpenAI-compatible provider of Acme pointing at the test upstream."""
    from apps.proxy.services import provider_save

    return provider_save(team=team, user=owner, name="Test upstream", base_url=upstream.url, api_key="sk-test-key-1234")


@pytest.fixture
def only_upstream(team, upstream_provider):
    """Tests about the upstream do not need the local engine listed (or loaded)."""
    team.providers.filter(kind="local").update(enabled=False)
    return upstream_provider


@pytest.fixture
def raw_token(team, owner, upstream_provider):
    """A personal /v1 token of Acme's owner; Acme has the test upstream as a provider."""
    from django.core.cache import cache

    from apps.accounts.services import api_token_create

    cache.clear()  # the per-token rate limit's windows
    return api_token_create(user=owner, team=team, name="tests")[1]


@pytest.fixture
def v1_url(live_asgi):
    """/v1 of Playground served over loopback by tests/live.py."""
    return live_asgi.url + "/v1"


def pytest_collection_modifyitems(config, items):
    """Browser tests last: Playwright's sync API keeps an event loop running in the main
    thread for the rest of the session, which async tests after it cannot share."""
    def is_browser(item) -> bool:
        return "/e2e/" in str(item.fspath) or item.get_closest_marker("browser") is not None

    items.sort(key=is_browser)  # stable: keeps the order within each group
