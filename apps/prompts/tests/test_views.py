"""The prompts pages through the test client: roles, team scoping, forms and fragments."""
from __future__ import annotations

import json

import pytest
from django.urls import reverse

from apps.prompts import services
from apps.prompts.models import Prompt, PromptVersion
from apps.proxy.models import Provider

pytestmark = pytest.mark.django_db(transaction=True)


def _local(team):
    return Provider.objects.get(team=team, kind="local")


def test_list_search_and_filters(owner_client, make_version):
    v = make_version(name="Support reply")
    services.prompt_update(prompt=v.prompt, name="Support reply", tags="support", folder="help")
    make_version(name="Summariser", model="gpt-4o")
    page = owner_client.get("/prompts/").content.decode()
    assert "Support reply" in page and "Summariser" in page
    page = owner_client.get("/prompts/?tag=support").content.decode()
    assert "Support reply" in page and "Summariser" not in page
    page = owner_client.get("/prompts/?q=nothing-like-this").content.decode()
    assert "No prompt matches" in page


def test_create_a_prompt_then_save_new_versions_and_diff(owner_client, team):
    key = f"{_local(team).pk}:smollm2-135m-instruct"
    response = owner_client.post("/prompts/new/", {
        "name": "Greeter", "tags": "demo", "mode": "chat", "system": "Be brief.", "role": ["user"],
        "content": ["Say hello to {{name}}"], "model_key": key, "temperature": "0.5", "commit_message": "",
    })
    assert response.status_code == 302
    prompt = Prompt.objects.get(name="Greeter")
    v1 = prompt.versions.get()
    assert v1.messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello to {{name}}"}]
    assert v1.params == {"temperature": 0.5} and v1.model == "smollm2-135m-instruct" and prompt.tags == ["demo"]
    form = owner_client.get(f"/prompts/{prompt.pk}/versions/new/").content.decode()
    assert "Say hello to {{name}}" in form
    response = owner_client.post(f"/prompts/{prompt.pk}/versions/new/", {
        "mode": "chat", "system": "Be very brief.", "role": ["user", "assistant"], "content": ["Say hello to {{name}}", "Hello!"],
        "model_key": key, "temperature": "0.7", "max_tokens": "40", "commit_message": "shorter",
    })
    assert response.status_code == 302
    v2 = prompt.versions.get(number=2)
    assert v2.params == {"temperature": 0.7, "max_tokens": 40} and v2.commit_message == "shorter"
    diff = owner_client.get(f"/prompts/{prompt.pk}/diff/?a={v1.pk}&b={v2.pk}").content.decode()
    assert "<ins> very</ins>" in diff and "0.<del>5</del>" in diff and "0.<ins>7</ins>" in diff and "Parameters" in diff
    v1.refresh_from_db()
    assert v1.messages[0]["content"] == "Be brief."  # the old version did not change


def test_editor_errors_name_the_field(owner_client, team, make_version):
    prompt = make_version().prompt
    key = f"{_local(team).pk}:smollm2-135m-instruct"
    response = owner_client.post(f"/prompts/{prompt.pk}/versions/new/", {
        "mode": "chat", "role": ["user"], "content": ["x"], "model_key": key, "temperature": "5",
    })
    assert response.status_code == 400 and "Temperature must be between 0 and 2" in response.content.decode()
    response = owner_client.post(f"/prompts/{prompt.pk}/versions/new/", {
        "mode": "chat", "role": ["user"], "content": ["x"], "model_key": key, "tools": "[{",
    })
    assert response.status_code == 400 and "Tools are not valid JSON" in response.content.decode()
    assert prompt.versions.count() == 1


def test_detail_preview_and_code(owner_client, make_version):
    version = make_version(content="Dear {{name}},\nabout {{topic}}")
    page = owner_client.get(f"/prompts/{version.prompt_id}/").content.decode()
    assert 'name="var.name"' in page and 'name="var.topic"' in page and "v1" in page
    fragment = owner_client.get(f"/prompts/versions/{version.pk}/preview/", {"var.name": "Ada"}).content.decode()
    assert "No value yet for <code>topic</code>" in fragment and "Ada" in fragment and "token" in fragment
    assert "<html" not in fragment
    code = owner_client.get(f"/prompts/versions/{version.pk}/code/", {"var.name": "Ada"}).content.decode()
    assert "no value for &#x27;topic&#x27;" in code
    code = owner_client.get(f"/prompts/versions/{version.pk}/code/", {"var.name": "Ada", "var.topic": "tea"}).content.decode()
    assert "Dear Ada,\\nabout tea" in code and "$OPENAI_API_KEY" in code or "$PLAYGROUND_API_KEY" in code
    assert "sk-" not in code


def test_broken_placeholder_shows_its_line(owner_client, make_version):
    version = make_version(content="ok\nDear {{name")
    fragment = owner_client.get(f"/prompts/versions/{version.pk}/preview/").content.decode()
    assert "message 2 (user) line 2" in fragment and "never closed" in fragment


def test_restore_fork_label_edit_delete(owner_client, make_version, owner):
    v1 = make_version(content="one")
    v2 = make_version(v1.prompt, content="two")
    assert owner_client.post(f"/prompts/versions/{v1.pk}/restore/").status_code == 302
    assert v1.prompt.versions.order_by("-number").first().messages[-1]["content"] == "one"
    assert owner_client.post(f"/prompts/versions/{v2.pk}/fork/", {"name": "Forked"}).status_code == 302
    assert Prompt.objects.get(name="Forked").versions.get().messages[-1]["content"] == "two"
    owner_client.post(f"/prompts/versions/{v2.pk}/label/", {"label": "production"})
    assert v1.prompt.labels.get().version == v2
    owner_client.post(f"/prompts/versions/{v1.pk}/label/", {"label": "production"})
    assert v1.prompt.labels.get().version == v1
    owner_client.post(f"/prompts/{v1.prompt_id}/edit/", {"name": "Renamed", "tags": "x, y", "folder": "a/b", "description": "d"})
    prompt = Prompt.objects.get(pk=v1.prompt_id)
    assert (prompt.name, prompt.tags, prompt.folder) == ("Renamed", ["x", "y"], "a/b")
    assert owner_client.post(f"/prompts/{prompt.pk}/delete/").status_code == 302
    assert not Prompt.objects.filter(pk=prompt.pk).exists() and not PromptVersion.objects.filter(prompt_id=prompt.pk).exists()


def test_no_url_edits_a_version(owner_client, make_version):
    """The URLs that take a version only read it or save a *new* one; none changes it."""
    from apps.prompts import urls

    version_views = {p.name for p in urls.urlpatterns if "version_id" in p.pattern.regex.groupindex}
    assert version_views == {"preview", "code", "open", "present", "restore", "fork", "label", "share"}
    version = make_version(content="original")
    before = PromptVersion.objects.values().get(pk=version.pk)
    for name in version_views:
        owner_client.post(reverse(f"prompts:{name}", kwargs={"version_id": version.pk}),
                          {"label": "production", "name": "x", "messages": "[]", "content": "changed", "model": "other"})
    assert PromptVersion.objects.values().get(pk=version.pk) == before


def test_viewer_reads_but_cannot_save(viewer_client, make_version, team):
    version = make_version()
    assert viewer_client.get(f"/prompts/{version.prompt_id}/").status_code == 200
    key = f"{_local(team).pk}:smollm2-135m-instruct"
    data = {"mode": "chat", "role": ["user"], "content": ["x"], "model_key": key, "name": "v"}
    assert viewer_client.post(f"/prompts/{version.prompt_id}/versions/new/", data).status_code == 403
    assert viewer_client.post("/prompts/new/", data).status_code == 403
    for action in ("restore", "fork", "label", "share"):
        assert viewer_client.post(f"/prompts/versions/{version.pk}/{action}/", {"label": "production"}).status_code == 403
    assert PromptVersion.objects.count() == 1


def test_another_teams_prompt_is_404(outsider_client, make_version):
    version = make_version()
    assert outsider_client.get(f"/prompts/{version.prompt_id}/").status_code == 404
    assert outsider_client.get(f"/prompts/versions/{version.pk}/preview/").status_code == 404
    assert outsider_client.get(f"/chat/?version={version.pk}").status_code == 404


def test_export_download_and_import_page(owner_client, make_version, outsider_client):
    version = make_version()
    response = owner_client.get(f"/prompts/{version.prompt_id}/export/")
    assert response["Content-Disposition"].startswith('attachment; filename="support-reply.prompt.json"')
    data = json.loads(response.content)
    response = outsider_client.post("/prompts/import/", {"json": json.dumps(data)})
    assert response.status_code == 302 and Prompt.objects.filter(name="Support reply").count() == 2
    data["format"] = 9
    response = outsider_client.post("/prompts/import/", {"json": json.dumps(data, indent=2)})
    assert response.status_code == 400 and "written by a newer Playground" in response.content.decode()


def test_open_in_playground_preloads_the_chat_page(owner_client, team, make_version):
    local = _local(team)
    version = make_version(content="Hello {{name}}", model="smollm2-135m-instruct", provider=local,
                           params={"temperature": 0.4, "max_tokens": 30, "stop": ["###"]},
                           response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}, "strict": True}})
    assert owner_client.get(f"/prompts/versions/{version.pk}/open/")["Location"] == f"/chat/?version={version.pk}"
    page = owner_client.get(f"/chat/?version={version.pk}").content.decode()
    assert "You are kind.</textarea>" in page and "Hello {{name}}</textarea>" in page
    assert 'value="0.4"' in page and 'value="30"' in page and "###</textarea>" in page
    assert f'value="{local.pk}:smollm2-135m-instruct" data-context-length' in page.replace("\n", " ") or \
        f'{local.pk}:smollm2-135m-instruct"' in page
    assert 'value="json_schema" checked' in page


def test_chat_model_query_preselects_and_run_replay(owner_client, team):
    from apps.proxy.models import Run

    local = _local(team)
    page = owner_client.get(f"/chat/?model={local.pk}:smollm2-135m-instruct").content.decode()
    assert f'value="{local.pk}:smollm2-135m-instruct"' in page
    run = Run.objects.create(team=team, capability="chat", provider=local, model="smollm2-135m-instruct",
                             input={"messages": [{"role": "system", "content": "Sys"}, {"role": "user", "content": "Replay me"}]},
                             params={"temperature": 0.9})
    page = owner_client.get(f"/chat/?run={run.pk}").content.decode()
    assert "Replay me</textarea>" in page and "Sys</textarea>" in page and 'value="0.9"' in page


def test_completion_versions_open_in_completions(owner_client, team, owner):
    version = services.prompt_version_create(team=team, user=owner, name="Base", mode="completion", text="Once upon")
    assert owner_client.get(f"/prompts/versions/{version.pk}/open/")["Location"] == f"/completions/?version={version.pk}"


def test_present_page_has_the_conversation_and_run_only(owner_client, make_version, team):
    version = make_version(content="Hello {{name}}", model="smollm2-135m-instruct", provider=_local(team))
    page = owner_client.get(f"/prompts/versions/{version.pk}/present/").content.decode()
    assert "no value for &#x27;name&#x27;" in page and "data-run-button" in page and "disabled" in page
    page = owner_client.get(f"/prompts/versions/{version.pk}/present/", {"var.name": "Ada"}).content.decode()
    assert "Hello Ada</textarea>" in page and 'ws-connect="/ws/chat/"' in page
    assert "sidebar" not in page and "data-present-error" not in page


def test_saving_in_chat_after_open_adds_a_version_to_that_prompt(owner_client, outsider_client, team, make_version):
    local = _local(team)
    version = make_version(content="Hello", model="smollm2-135m-instruct", provider=local)
    page = owner_client.get(f"/chat/?version={version.pk}").content.decode()
    assert f'name="prompt_id" value="{version.prompt_id}"' in page and "Save as new version" in page
    form = {"prompt_id": str(version.prompt_id), "system": "You are kinder.", "uid": "a1", "role": "user", "content": "Hello there",
            "model_key": f"{local.pk}:smollm2-135m-instruct", "temperature": "0.2"}
    response = owner_client.post("/chat/save/", form, HTTP_HX_PROMPT="Kinder system message")
    assert "v2" in response.content.decode()
    v2 = version.prompt.versions.get(number=2)
    assert v2.commit_message == "Kinder system message" and v2.messages[0] == {"role": "system", "content": "You are kinder."}
    assert v2.params == {"temperature": 0.2}
    assert outsider_client.post("/chat/save/", form).status_code == 404
    assert version.prompt.versions.count() == 2


def test_presented_runs_name_their_version_only_within_the_team(make_version, other_team, team):
    from apps.chat.consumers import _team_version_id

    version = make_version()
    assert _team_version_id(team, str(version.pk)) == version.pk
    assert _team_version_id(other_team, str(version.pk)) is None
    assert _team_version_id(team, "nope") is None


def test_open_in_playground_with_variables_filled(owner_client, team, make_version):
    version = make_version(content="Hello {{name}}, about {{topic}}", model="smollm2-135m-instruct", provider=_local(team))
    response = owner_client.get(f"/prompts/versions/{version.pk}/open/", {"var.name": "Ada", "var.topic": ""})
    assert response["Location"] == f"/chat/?version={version.pk}&var.name=Ada"
    page = owner_client.get(response["Location"]).content.decode()
    assert "Hello Ada, about {{topic}}</textarea>" in page and "· filled" in page
    assert 'name="prompt_id"' not in page  # saving would bake "Ada" into the template: it saves a new prompt


def test_a_completion_version_page_previews_and_codes(owner_client, team, owner):
    version = services.prompt_version_create(team=team, user=owner, name="Story", mode="completion",
                                             text="Once upon a {{thing}},", model="gemma-3-270m")
    page = owner_client.get(f"/prompts/{version.prompt_id}/").content.decode()
    assert "Once upon a {{thing}}," in page and 'name="var.thing"' in page and "Open in completions" in page
    assert "data-present" not in page  # presentation mode is for chat prompts
    fragment = owner_client.get(f"/prompts/versions/{version.pk}/preview/", {"var.thing": "time"}).content.decode()
    assert "ready to run" in fragment and "time" in fragment
    code = owner_client.get(f"/prompts/versions/{version.pk}/code/", {"var.thing": "time"}).content.decode()
    assert "/v1/completions" in code and "client.completions.create" in code
