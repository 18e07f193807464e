"""The foundation's pages in a real browser: setup, tokenizer, providers, models, team."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.django_db(transaction=True)


def test_first_run_setup_creates_the_owner(page, live_asgi, shot):
    from apps.accounts.views import setup_token

    page.goto("/")
    expect(page.get_by_text("not set up yet")).to_be_visible()
    page.goto(f"/accounts/setup/?token={setup_token()}")
    page.fill("#id_username", "ada")
    page.fill("#id_password", "correct horse battery staple")
    page.fill("#id_team_name", "Research")
    shot(page, "setup")
    page.click("text=Create owner and team")
    page.wait_for_url("**/chat/**")
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username="ada")
    assert user.memberships.get().role == "owner"
    assert user.memberships.get().team.providers.filter(kind="local").exists()
    # One-time: the setup page is gone once the owner exists.
    response = page.goto(f"/accounts/setup/?token={setup_token()}")
    assert response.status == 404


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
def test_tokenizer_counts_tokenization_as_two(page, login, owner, team, shot, encoding):
    login(page, owner)
    page.goto("/tokenizer/")
    page.select_option("#id_encoding", encoding)
    page.fill("#id_text", " tokenization")
    expect(page.get_by_test_id("token-count")).to_have_text("2")
    expect(page.locator(".tok")).to_have_count(2)
    expect(page.locator(".tok").first).to_have_text(" token")
    shot(page, f"tokenizer-{encoding}")
    assert not page.js_errors


def test_provider_add_test_connection_and_models(page, login, owner, team, upstream, shot):
    login(page, owner)
    page.goto("/settings/providers/new/")
    page.fill("#id_name", "Upstream")
    page.fill("#id_base_url", upstream.url)
    page.fill("#id_api_key", "sk-live-secret-9876")
    page.click("text=Save")
    expect(page.get_by_text("Provider Upstream saved")).to_be_visible()
    assert "sk-live-secret-9876" not in page.content()
    expect(page.get_by_text("sk-...9876")).to_be_visible()
    page.locator("tr", has_text="Upstream").get_by_role("button", name="Test connection").click()
    expect(page.get_by_text("Connected.")).to_be_visible()
    shot(page, "providers")
    page.goto("/models/")
    expect(page.locator("#models").get_by_text("gpt-4o-mini", exact=True)).to_be_visible()
    shot(page, "models")
    assert not page.js_errors
