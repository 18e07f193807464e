"""Uploads (size limits, content sniffing, path traversal), response headers, the /v1
rate limit per token, and Django's deployment checks.

Upload and download checks owned by an app's own tests (the fine-tune file size limit in
apps/finetunes, the download-name check in apps/embeddings) are not repeated here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.upstream import png_bytes

BASE_DIR = Path(__file__).resolve().parents[2]
TRAVERSAL = "../../../../../tmp/playground-traversal"


def _under(path: str, root) -> bool:
    return Path(path).resolve().is_relative_to(Path(root).resolve())


# -- content sniffing ----------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_every_kind_of_response_says_nosniff(owner_client, team, upstream_provider):
    for url in ("/", reverse("proxy:providers"), reverse("proxy:models"), "/healthz", "/no-such-page/", "/static/css/app.css", "/v1/models"):
        response = owner_client.get(url)
        assert response.headers.get("X-Content-Type-Options") == "nosniff", f"{url} ({response.status_code})"


@pytest.mark.django_db
def test_html_disguised_as_an_image_is_refused(editor_client):
    """A page in an image's clothes: the type comes from the bytes, not the name or the header."""
    fake = SimpleUploadedFile("cat.png", b"<html><script>window.__xss=1</script></html>", content_type="image/png")
    response = editor_client.post(reverse("chat:attach"), {"image": fake})
    assert response.status_code == 400
    assert "is not an image" in response.json()["error"]


@pytest.mark.django_db
def test_image_attachment_is_served_as_its_sniffed_type_with_nosniff(editor_client, settings):
    # A real PNG with HTML after it (a polyglot), uploaded under a traversal name claiming HTML.
    polyglot = png_bytes() + b"<script>window.__xss=1</script>"
    upload = SimpleUploadedFile(f"{TRAVERSAL}.html", polyglot, content_type="text/html")
    response = editor_client.post(reverse("chat:attach"), {"image": upload})
    assert response.status_code == 200, response.content
    from apps.chat.models import Attachment

    attachment = Attachment.objects.get(pk=response.json()["id"])
    assert _under(attachment.file.path, settings.MEDIA_ROOT), attachment.file.path
    assert ".." not in attachment.file.name and not attachment.file.name.endswith(".html")
    served = editor_client.get(response.json()["url"])
    assert served.status_code == 200
    assert served["Content-Type"] == "image/png"
    assert served["X-Content-Type-Options"] == "nosniff"
    assert "html" not in served.get("Content-Disposition", "")


# -- size limits ----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_image_over_the_limit_is_refused_with_the_limit(editor_client):
    big = SimpleUploadedFile("huge.png", png_bytes() + b"\0" * (20 * 1024 * 1024 + 1), content_type="image/png")
    response = editor_client.post(reverse("chat:attach"), {"image": big})
    assert response.status_code == 400
    assert "at most 20 MB" in response.json()["error"]


@pytest.mark.django_db(transaction=True)
def test_v1_body_over_the_limit_is_a_413_that_says_so(live_asgi, team, owner, upstream_provider, settings):
    from apps.accounts.services import api_token_create

    cache.clear()
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    raw = api_token_create(user=owner, team=team, name="big")[1]
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * (128 * 1024)}]})
    response = httpx.post(f"{live_asgi.url}/v1/chat/completions", content=body, timeout=20,
                          headers={"authorization": f"Bearer {raw}", "content-type": "application/json"})
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "request_too_large" and "64 KB" in error["message"]


# -- path traversal in stored names ---------------------------------------------------------------------

@pytest.mark.django_db
def test_training_file_with_a_traversal_name_stays_in_media(editor_client, settings):
    line = json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}) + "\n"
    upload = SimpleUploadedFile(f"{TRAVERSAL}.jsonl", (line * 12).encode(), content_type="application/jsonl")
    response = editor_client.post(reverse("finetunes:file_upload"), {"file": upload, "model": "gpt-4o-mini-2024-07-18"})
    assert response.status_code in (200, 302), response.content[:500]
    from apps.finetunes.models import TrainingFile

    row = TrainingFile.objects.get()
    assert _under(row.file.path, settings.MEDIA_ROOT), row.file.path
    assert "/" not in row.filename and ".." not in row.filename
    assert not Path("/tmp/playground-traversal.jsonl").exists()


# -- /v1 rate limit per token ---------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_v1_rate_limit_is_per_token(live_asgi, team, owner, editor, upstream_provider, settings):
    """One token spending its limit does not limit another (tests/test_v1 covers the 429 itself)."""
    from apps.accounts.services import api_token_create

    cache.clear()
    settings.V1_RATE_LIMIT = 3
    settings.V1_RATE_LIMIT_WINDOW = 30
    first = {"authorization": f"Bearer {api_token_create(user=owner, team=team, name='a')[1]}"}
    second = {"authorization": f"Bearer {api_token_create(user=editor, team=team, name='b')[1]}"}
    url = f"{live_asgi.url}/v1/models"
    assert [httpx.get(url, headers=first, timeout=20).status_code for _ in range(5)] == [200, 200, 200, 429, 429]
    assert httpx.get(url, headers=second, timeout=20).status_code == 200
    # Requests with a wrong token are refused before they count against anyone.
    assert httpx.get(url, headers={"authorization": "Bearer pgk-not-a-token"}, timeout=20).status_code == 401


# -- deployment checks ------------------------------------------------------------------------------------

def test_check_deploy_is_clean_with_production_settings(tmp_path):
    # A clean production environment: not the test process's own switches (the browser
    # tests set DJANGO_ALLOW_ASYNC_UNSAFE, which the deploy check rightly refuses).
    env = {k: v for k, v in os.environ.items()
           if k not in ("DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE", "PLAYGROUND_SKIP_STARTUP", "DEBUG")}
    env.update(
        DEBUG="0", SECRET_KEY="check-deploy-" + "a-long-random-secret-key-for-the-deploy-check-0123456789",
        ALLOWED_HOSTS="playground.example.com", PLAYGROUND_VAR_DIR=str(tmp_path),
    )
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
