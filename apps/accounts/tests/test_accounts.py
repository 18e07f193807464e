"""First run, teams, roles and API tokens."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from apps.accounts import services
from apps.accounts.models import Membership, Role
from apps.accounts.views import setup_token

pytestmark = pytest.mark.django_db
User = get_user_model()


def test_setup_page_needs_the_token_and_works_once(client):
    assert client.get("/accounts/setup/").status_code == 403
    response = client.get(f"/accounts/setup/?token={setup_token()}")
    assert response.status_code == 200 and b"Create owner" in response.content
    response = client.post(
        f"/accounts/setup/?token={setup_token()}",
        {"username": "ada", "password": "correct horse battery", "team_name": "Lab"},
    )
    assert response.status_code == 302
    user = User.objects.get(username="ada")
    membership = user.memberships.get()
    assert membership.role == Role.OWNER and membership.team.name == "Lab"
    assert membership.team.providers.filter(kind="local").count() == 1
    # One-time: after the first user exists the page is gone.
    assert client.get(f"/accounts/setup/?token={setup_token()}").status_code == 404


def test_setup_refuses_weak_password(client):
    response = client.post(f"/accounts/setup/?token={setup_token()}", {"username": "ada", "password": "1234567890", "team_name": "Lab"})
    assert response.status_code == 200
    assert b"too common" in response.content or b"entirely numeric" in response.content
    assert not User.objects.exists()


def test_home_shows_setup_hint_then_login(client, owner):
    assert client.get("/").status_code == 302  # a user exists: to login


def test_openai_key_in_environment_adds_provider(monkeypatch, client):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key-abcd1234")
    _, team = services.owner_setup(username="ada", password="correct horse battery", team_name="Lab")
    provider = team.providers.get(name="OpenAI")
    assert provider.base_url == "https://api.openai.com/v1"
    assert provider.get_api_key() == "sk-env-key-abcd1234"
    assert "sk-env-key" not in provider.api_key_encrypted  # encrypted at rest
    assert provider.masked_key == "sk-...1234"


def test_team_switch_only_to_own_teams(owner_client, owner, team, other_team):
    mine = services.team_create(name="Second", owner=owner)
    assert owner_client.post("/accounts/teams/switch/", {"team": mine.pk}).status_code == 302
    assert owner_client.get("/settings/providers/").context["current_team"] == mine
    assert owner_client.post("/accounts/teams/switch/", {"team": other_team.pk}).status_code == 404


def test_owner_adds_member_and_changes_role(owner_client, team):
    response = owner_client.post("/accounts/team/", {"username": "newbie", "role": "viewer", "password": "a-long-password-1"})
    assert response.status_code == 302
    membership = Membership.objects.get(user__username="newbie", team=team)
    assert membership.role == "viewer"
    owner_client.post(f"/accounts/team/members/{membership.pk}/role/", {"role": "editor"})
    membership.refresh_from_db()
    assert membership.role == "editor"


def test_adding_unknown_user_without_password_says_what_to_do(owner_client, team):
    response = owner_client.post("/accounts/team/", {"username": "ghost", "role": "viewer"})
    assert response.status_code == 200
    assert b"give a password to create the account" in response.content


def test_last_owner_cannot_leave(team, owner):
    with pytest.raises(ValidationError, match="at least one owner"):
        services.member_remove(membership=team.memberships.get(user=owner))


@pytest.mark.parametrize("url,data", [
    ("/accounts/team/", {"username": "x", "role": "viewer", "password": "a-long-password-1"}),
    ("/settings/providers/new/", {"name": "n", "base_url": "http://x/v1"}),
    ("/settings/prices/", {"model": "m", "input_per_million": "1", "output_per_million": "1"}),
])
def test_viewer_and_editor_cannot_do_owner_things(viewer_client, editor_client, url, data):
    for client in (viewer_client, editor_client):
        assert client.post(url, data).status_code == 403


def test_viewer_gets_403_with_reason_on_edit(viewer_client, upstream_provider):
    response = viewer_client.post(f"/settings/providers/{upstream_provider.pk}/test/")
    assert response.status_code == 403


def test_api_tokens_shown_once_stored_hashed_and_revocable(owner_client, owner, team):
    response = owner_client.post("/accounts/tokens/", {"name": "script"})
    raw = response.context["raw_token"]
    assert raw.startswith("pgk-") and raw.encode() in response.content
    token = owner.api_tokens.get()
    assert token.token_hash != raw and raw not in str(token.__dict__)
    assert raw.encode() not in owner_client.get("/accounts/tokens/").content  # never shown again
    assert services.api_token_authenticate(raw=raw) == token
    owner_client.post(f"/accounts/tokens/{token.pk}/revoke/")
    assert services.api_token_authenticate(raw=raw) is None


def test_token_of_member_who_left_stops_working(team, editor):
    _, raw = services.api_token_create(user=editor, team=team, name="t")
    team.memberships.get(user=editor).delete()
    assert services.api_token_authenticate(raw=raw) is None


def test_anonymous_is_sent_to_login(client, team):
    response = client.get("/settings/providers/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_login_is_rate_limited_per_address_and_username(client, owner):
    from django.core.cache import cache

    cache.clear()
    for _ in range(10):
        assert client.post("/accounts/login/", {"username": "olivia", "password": "wrong"}).status_code == 200
    locked = client.post("/accounts/login/", {"username": "olivia", "password": "a-long-test-password"})
    assert locked.status_code == 429 and b"Too many failed sign-ins" in locked.content
    # Another username from the same address is not locked out.
    assert client.post("/accounts/login/", {"username": "someone", "password": "x"}).status_code == 200
    cache.clear()
    assert client.post("/accounts/login/", {"username": "olivia", "password": "a-long-test-password"}).status_code == 302


def test_a_rate_limit_window_opens_at_the_first_attempt_and_then_closes():
    """Windows start at a key's first hit, so a burst never straddles a clock boundary and
    gets twice the limit; when the window closes the key starts afresh."""
    import time

    from apps.accounts import ratelimit

    key, window = "test:window", 0.6
    ratelimit.reset(key, window=window)
    verdicts = [ratelimit.hit(key, limit=2, window=window) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, False, False]
    assert [v.count for v in verdicts] == [1, 2, 3, 4] and ratelimit.peek(key, window=window) == 4
    assert all(v.retry_after == 1 for v in verdicts)  # whole seconds, never 0
    time.sleep(0.7)
    assert ratelimit.peek(key, window=window) == 0
    fresh = ratelimit.hit(key, limit=2, window=window)
    assert fresh.allowed and fresh.count == 1
    ratelimit.reset(key, window=window)
    assert ratelimit.peek(key, window=window) == 0
