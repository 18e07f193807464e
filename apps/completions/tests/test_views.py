"""The completions page: preloading a saved version or a run, View code, Save as prompt."""
from __future__ import annotations

import pytest

from apps.completions.tests.conftest import form
from apps.prompts.services import prompt_version_create
from apps.proxy.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_page_offers_completion_models_and_says_what_the_local_engine_cannot_do(owner_client, team):
    response = owner_client.get("/completions/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "gemma-3-270m" in html and 'ws-connect="/ws/completions/"' in html and "data-run-button" in html
    assert "The local engine does not insert text" in html  # the reason suffix is disabled for it


def test_version_preloads_a_completion_prompt_with_its_variables(owner_client, team, owner, upstream, upstream_provider):
    version = prompt_version_create(team=team, user=owner, name="Letters", mode="completion", text="Dear {{name}},",
                                    provider=upstream_provider, model="gpt-3.5-turbo-instruct",
                                    params={"temperature": 0.4, "stop": ["\n"], "logprobs": 2, "max_tokens": 30})
    html = owner_client.get(f"/completions/?version={version.pk}").content.decode()
    assert "Dear {{name}}," in html and 'name="var_name"' in html and "Letters · v1" in html
    assert f'value="{upstream_provider.pk}:gpt-3.5-turbo-instruct" data-context-length' in html.replace("\n", " ") or \
        f'<option value="{upstream_provider.pk}:gpt-3.5-turbo-instruct"' in html
    assert 'value="0.4"' in html and 'value="30"' in html and 'id="p-logprobs" checked' in html


def test_run_preloads_a_past_completion_for_replay(owner_client, team, owner, upstream_provider):
    run = Run.objects.create(team=team, user=owner, capability="completion", provider=upstream_provider, model="gpt-3.5-turbo-instruct",
                             input={"prompt": "Roses are red,"}, params={"max_tokens": 12, "echo": True}, status="succeeded",
                             output={"choices": [{"index": 0, "text": "Roses are red, violets are blue", "finish_reason": "stop", "logprobs": []}]},
                             output_text="Roses are red, violets are blue", prompt_tokens=4, completion_tokens=5)
    html = owner_client.get(f"/completions/?run={run.pk}").content.decode()
    assert "Roses are red," in html and 'id="p-echo" checked' in html and 'value="12"' in html
    # The echoed prompt is shown as the prompt, the rest as the completion.
    assert '<span class="cmp-out" data-out> violets are blue</span>' in html and "showing-result" in html


def test_another_teams_version_or_run_is_404(outsider_client, team, owner, upstream_provider):
    version = prompt_version_create(team=team, user=owner, name="secret", mode="completion", text="secret")
    run = Run.objects.create(team=team, capability="completion", model="m", input={"prompt": "secret"})
    assert outsider_client.get(f"/completions/?version={version.pk}").status_code == 404
    assert outsider_client.get(f"/completions/?run={run.pk}").status_code == 404


def test_view_code_shows_the_completions_request_with_variables_filled(owner_client, team, upstream, upstream_provider):
    response = owner_client.post("/completions/code/", form(upstream_provider, prompt="Hi {{who}}", var_who="Ada", suffix="!"))
    html = response.content.decode()
    assert "/completions" in html and "client.completions.create" in html and "Hi Ada" in html and "sk-test" not in html
    error = owner_client.post("/completions/code/", form(upstream_provider, prompt="Hi {{who}}")).content.decode()
    assert "no value for" in error


def test_save_as_prompt_creates_a_completion_version(owner_client, team, upstream, upstream_provider):
    response = owner_client.post("/completions/save/", form(upstream_provider, prompt="Q: {{q}}\nA:"), HTTP_HX_PROMPT="Quiz")
    assert response.status_code == 200 and "Saved as <strong>Quiz</strong> v1" in response.content.decode()
    from apps.prompts.models import PromptVersion

    version = PromptVersion.objects.get()
    assert version.mode == "completion" and version.text == "Q: {{q}}\nA:" and version.prompt.team == team


def test_a_viewer_may_look_but_not_save(viewer_client, team, upstream, upstream_provider):
    assert viewer_client.get("/completions/").status_code == 200
    assert viewer_client.post("/completions/save/", form(upstream_provider)).status_code == 403
