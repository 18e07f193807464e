"""Training files: upload (validated first), the report and estimate, inspect, delete, build from runs."""
from __future__ import annotations

import pytest
from django.urls import reverse

from apps.finetunes.models import TrainingFile
from apps.finetunes.tests.helpers import chat_lines, stored_file, upload
from apps.finetunes.uploads import MaxSizeUploadHandler
from apps.proxy.models import Run
from tests.upstream import Reply

pytestmark = pytest.mark.django_db(transaction=True)


def test_valid_upload_is_stored_and_shows_report_and_estimate(editor_client, team):
    response = editor_client.post(reverse("finetunes:file_upload"), {"file": upload(chat_lines(10)), "model": "gpt-4o-mini-2024-07-18"})
    assert response.status_code == 302
    row = TrainingFile.objects.get(team=team)
    assert row.examples == 10 and row.total_tokens > 0 and row.file.read().count(b"\n") == 10
    page = editor_client.get(response["Location"]).content.decode()
    assert "Valid: 10 examples" in page
    assert "Training cost estimate" in page and "$3.00 per 1M training tokens" in page
    assert "What is the capital of France?" in page  # first rows


def test_broken_line_7_is_named_and_nothing_is_stored(editor_client, team):
    lines = chat_lines(10).split(b"\n")
    lines[6] = b'{"messages": [{"role": "user", "content": "oops"}'
    response = editor_client.post(reverse("finetunes:file_upload"), {"file": upload(b"\n".join(lines)), "model": "gpt-4o-mini-2024-07-18"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Line 7</span>is not valid JSON" in page, page[page.find('id="report"'):][:1500]
    assert "train.jsonl was not stored" in page
    assert not TrainingFile.objects.filter(team=team).exists()


def test_empty_file_is_refused(editor_client, team):
    response = editor_client.post(reverse("finetunes:file_upload"), {"file": upload(b"\n\n"), "model": "gpt-4o-mini-2024-07-18"})
    assert response.status_code == 400
    assert "no examples" in response.content.decode()


def test_image_for_a_text_only_model_is_refused(editor_client):
    row = (b'{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]},'
           b' {"role": "assistant", "content": "A cat."}]}\n')
    response = editor_client.post(reverse("finetunes:file_upload"), {"file": upload(row), "model": "gpt-4o-mini-2024-07-18"})
    assert response.status_code == 400
    assert "does not take images" in response.content.decode()


def test_upload_over_the_limit_is_refused_from_content_length(editor_client, team):
    # 300 MB announced: answered 413 before the body is parsed (the client sends a small one).
    response = editor_client.post(reverse("finetunes:file_upload"), {"file": upload(chat_lines(2)), "model": "gpt-4o-mini-2024-07-18"},
                                  CONTENT_LENGTH=str(300 * 1024 * 1024 + 1))
    assert response.status_code == 413
    assert "300 MB limit" in response.content.decode()
    assert not TrainingFile.objects.exists()


def test_upload_handler_stops_a_body_without_length(settings, rf):
    from django.core.files.uploadhandler import StopUpload

    settings.FINETUNE_MAX_UPLOAD_BYTES = 1000
    request = rf.post("/")
    handler = MaxSizeUploadHandler(request)
    assert handler.receive_data_chunk(b"x" * 600, 0) == b"x" * 600
    with pytest.raises(StopUpload):
        handler.receive_data_chunk(b"x" * 600, 600)
    assert request.finetune_upload_too_large


def test_real_upload_over_a_small_limit_is_refused(editor_client, settings):
    settings.FINETUNE_MAX_UPLOAD_BYTES = 500
    response = editor_client.post(reverse("finetunes:file_upload"), {"file": upload(chat_lines(10)), "model": "gpt-4o-mini-2024-07-18"})
    assert response.status_code == 413
    assert not TrainingFile.objects.exists()


def test_viewer_cannot_upload(viewer_client):
    response = viewer_client.post(reverse("finetunes:file_upload"), {"file": upload(chat_lines(10)), "model": "gpt-4o-mini-2024-07-18"})
    assert response.status_code == 403


def test_estimate_follows_epochs_and_model(editor_client, team, editor):
    row = stored_file(team, editor)
    url = reverse("finetunes:file_detail", args=[row.pk])
    one = editor_client.get(url, {"model": "gpt-4o-mini-2024-07-18", "epochs": 1, "partial": "estimate"}, HTTP_HX_REQUEST="true")
    two = editor_client.get(url, {"model": "gpt-4o-2024-08-06", "epochs": 2, "partial": "estimate"}, HTTP_HX_REQUEST="true")
    assert one.content.decode().count('id="estimate"') == 1 and "<h1>" not in one.content.decode()
    tokens = row.total_tokens
    assert f"{tokens}</strong>" in one.content.decode()
    assert f"{2 * tokens}</strong>" in two.content.decode()
    assert "$25.00 per 1M" in two.content.decode()


def test_delete_removes_file_and_provider_copies(editor_client, team, editor, upstream, upstream_provider):
    row = stored_file(team, editor)
    row.upstream_ids = {str(upstream_provider.pk): "file-abc"}
    row.save()
    path = row.file.path
    upstream.script("DELETE /v1/files/file-abc", Reply(json={"id": "file-abc", "deleted": True}))
    response = editor_client.post(reverse("finetunes:file_delete", args=[row.pk]))
    assert response.status_code == 302
    assert not TrainingFile.objects.exists()
    assert upstream.requests_to("/v1/files/file-abc")[0].method == "DELETE"
    import os

    assert not os.path.exists(path)


def test_build_from_chat_runs(editor_client, team, editor):
    runs = [Run.objects.create(team=team, user=editor, capability="chat", model="gpt-4o-mini", status="succeeded",
                               input={"messages": [{"role": "user", "content": f"Question {i}?"}]}, output_text=f"Answer {i}.")
            for i in range(3)]
    Run.objects.create(team=team, capability="chat", model="m", status="failed", input={"messages": []}, output_text="x")
    page = editor_client.get(reverse("finetunes:file_from_runs")).content.decode()
    assert "Question 2?" in page
    response = editor_client.post(reverse("finetunes:file_from_runs"),
                                  {"filename": "support", "model": "SmolLM2-135M-Instruct", "runs": [runs[0].pk, runs[2].pk]})
    assert response.status_code == 302
    row = TrainingFile.objects.get(team=team)
    assert row.filename == "support.jsonl" and row.examples == 2
    content = row.file.read().decode()
    assert '"Answer 2."' in content and "Question 1?" not in content


def test_another_teams_file_is_404(outsider_client, team, editor):
    row = stored_file(team, editor)
    assert outsider_client.get(reverse("finetunes:file_detail", args=[row.pk])).status_code == 404
