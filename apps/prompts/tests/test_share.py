"""Share links: public read-only pages for a version or a run; revoked or expired is a 410."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.prompts import services
from apps.prompts.models import ShareLink
from apps.proxy.models import Run
from apps.proxy.services import provider_save

pytestmark = pytest.mark.django_db


def test_a_shared_version_opens_without_an_account(make_version, owner, team, client):
    provider = provider_save(team=team, user=owner, name="Corp OpenAI", base_url="http://127.0.0.1:9/v1", api_key="sk-corp-secret-key-9999")
    version = make_version(content="Summarise {{text}}", provider=provider, params={"temperature": 0.2})
    make_version(name="Other team data", content="unrelated secret prompt")
    link = services.share_link_create(team=team, user=owner, version=version)
    assert len(link.token) >= 40
    response = client.get(f"/s/{link.token}/")
    page = response.content.decode()
    assert response.status_code == 200 and "Support reply" in page and "Summarise {{text}}" in page
    assert "gpt-4o-mini" in page and "temperature 0.2" in page and "<code>text</code>" in page
    assert "sk-corp" not in page and "9999" not in page and "Corp OpenAI" not in page
    assert "unrelated secret" not in page and "olivia" not in page and "Acme" not in page
    assert response["X-Robots-Tag"] == "noindex"
    assert ShareLink.objects.get().views == 1


def test_a_shared_run_shows_the_conversation_and_numbers(team, owner, client):
    run = Run.objects.create(team=team, user=owner, capability="chat", model="smollm2-135m-instruct", status="succeeded",
                             input={"messages": [{"role": "user", "content": "What is 2+2?"}]}, output_text="4, of course.",
                             prompt_tokens=12, completion_tokens=5, ttft_ms=40, total_ms=300)
    link = services.share_link_create(team=team, user=owner, run=run)
    page = client.get(f"/s/{link.token}/").content.decode()
    assert "What is 2+2?" in page and "4, of course." in page and "12 in" in page and "5 out" in page and "TTFT 40 ms" in page


def test_revoked_and_expired_links_answer_410(make_version, owner, team, client):
    version = make_version()
    revoked = services.share_link_create(team=team, user=owner, version=version)
    services.share_link_revoke(link=revoked)
    response = client.get(f"/s/{revoked.token}/")
    assert response.status_code == 410 and "no longer available" in response.content.decode() and "revoked" in response.content.decode()
    assert "Hello {{name}}" not in response.content.decode()
    expired = services.share_link_create(team=team, user=owner, version=version, expires_in_hours=1)
    ShareLink.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    response = client.get(f"/s/{expired.token}/")
    assert response.status_code == 410 and "expired" in response.content.decode()
    assert client.get("/s/not-a-real-token/").status_code == 404


def test_owners_and_editors_list_and_revoke(make_version, owner, team, editor_client, viewer_client, outsider_client, client):
    version = make_version()
    response = editor_client.post(f"/prompts/versions/{version.pk}/share/", {"expires_in": "24"})
    assert response.status_code == 302
    link = ShareLink.objects.get()
    assert link.expires_at and timezone.now() + timedelta(hours=23) < link.expires_at < timezone.now() + timedelta(hours=25)
    assert link.token[:10] in editor_client.get("/prompts/shares/").content.decode()
    assert viewer_client.get("/prompts/shares/").status_code == 403
    assert viewer_client.post(f"/prompts/shares/{link.pk}/revoke/").status_code == 403
    assert outsider_client.post(f"/prompts/shares/{link.pk}/revoke/").status_code == 404
    assert client.get(f"/s/{link.token}/").status_code == 200
    assert editor_client.post(f"/prompts/shares/{link.pk}/revoke/").status_code == 302
    assert client.get(f"/s/{link.token}/").status_code == 410


def test_bad_expiry_is_refused_with_a_message(make_version, owner_client):
    version = make_version()
    response = owner_client.post(f"/prompts/versions/{version.pk}/share/", {"expires_in": "soon"}, follow=True)
    assert "Expiry must be a whole number of hours" in response.content.decode() and not ShareLink.objects.exists()


def test_share_a_run_from_the_runs_history(owner_client, team, owner, outsider_client):
    run = Run.objects.create(team=team, user=owner, capability="chat", model="m", output_text="out")
    assert outsider_client.post(f"/prompts/runs/{run.pk}/share/").status_code == 404
    assert owner_client.post(f"/prompts/runs/{run.pk}/share/").status_code == 302
    assert ShareLink.objects.get().run == run


def test_a_link_to_another_teams_object_cannot_be_made(make_version, other_team, outsider):
    version = make_version()
    with pytest.raises(PermissionError):
        services.share_link_create(team=other_team, user=outsider, version=version)

