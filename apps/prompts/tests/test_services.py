"""Saved prompts: versions, immutability, restore, fork, labels, concurrent saves, preview, code."""
from __future__ import annotations

import threading

import pytest
from django.db import close_old_connections

from apps.prompts import selectors, services
from apps.prompts.models import PromptLabel, PromptVersion, VersionImmutable
from apps.prompts.variables import VariableError

pytestmark = pytest.mark.django_db


def test_versions_are_numbered_and_the_prompt_keeps_them_all(make_version):
    v1 = make_version()
    v2 = make_version(v1.prompt, content="Hi {{name}}, about {{topic}}")
    v3 = make_version(v1.prompt, content="Hey {{name}}")
    assert [v.number for v in selectors.prompt_versions(prompt=v1.prompt)] == [3, 2, 1]
    assert (v1.number, v2.number, v3.number) == (1, 2, 3)


def test_a_saved_version_cannot_be_edited(make_version):
    version = make_version()
    version.messages = [{"role": "user", "content": "changed"}]
    with pytest.raises(VersionImmutable):
        version.save()
    with pytest.raises(VersionImmutable):
        PromptVersion.objects.filter(pk=version.pk).update(model="gpt-4o")
    with pytest.raises(VersionImmutable) as caught:
        services.prompt_version_update(version=version, model="gpt-4o")
    assert "save a new version" in str(caught.value)
    version.refresh_from_db()
    assert version.messages[-1]["content"] == "Hello {{name}}" and version.model == "gpt-4o-mini"


def test_restore_saves_the_old_content_as_a_new_version(make_version, owner):
    v1 = make_version(content="first")
    make_version(v1.prompt, content="second")
    restored = services.version_restore(version=v1, user=owner)
    assert restored.number == 3 and restored.messages == v1.messages and restored.commit_message == "Restored v1"
    assert v1.prompt.versions.count() == 3


def test_fork_makes_a_new_prompt_from_a_version(make_version, owner):
    v1 = make_version(content="first", params={"temperature": 0.2})
    services.prompt_update(prompt=v1.prompt, name="Support reply", tags="support, email", folder="support")
    fork = services.prompt_fork(version=v1, user=owner, name="Support reply, formal")
    assert fork.prompt_id != v1.prompt_id and fork.number == 1
    assert fork.prompt.name == "Support reply, formal" and fork.prompt.tags == ["support", "email"]
    assert fork.params == {"temperature": 0.2} and fork.messages == v1.messages
    assert "Forked from Support reply v1" in fork.commit_message


def test_a_label_points_to_exactly_one_version_and_moves(make_version, owner):
    v1 = make_version()
    v2 = make_version(v1.prompt, content="two")
    services.label_set(version=v1, name="production", user=owner)
    services.label_set(version=v2, name="Staging", user=owner)
    services.label_set(version=v2, name="production", user=owner)
    labels = {label.name: label.version_id for label in PromptLabel.objects.filter(prompt=v1.prompt)}
    assert labels == {"production": v2.pk, "staging": v2.pk}
    assert selectors.prompt_versions(prompt=v1.prompt)[0].label_names == ["production", "staging"]
    with pytest.raises(services.PromptInputError):
        services.label_set(version=v1, name="no spaces!", user=owner)
    services.label_remove(prompt=v1.prompt, name="staging")
    assert list(PromptLabel.objects.values_list("name", flat=True)) == ["production"]


def test_metadata_edit_and_list_filters(make_version, owner, editor):
    a = make_version(name="Support reply").prompt
    b = make_version(name="Summariser", model="gpt-4o", user=editor).prompt
    services.prompt_update(prompt=a, name="Support reply", description="answers tickets", tags="support, Email, support", folder="/support/email/")
    a.refresh_from_db()
    assert a.tags == ["support", "Email"] and a.folder == "support/email"
    team = a.team
    names = lambda **f: sorted(p.name for p in selectors.prompts_list(team=team, **f))  # noqa: E731
    assert names(q="summ") == ["Summariser"]
    assert names(q="tickets") == ["Support reply"]
    assert names(tag="email") == ["Support reply"]
    assert names(folder="support") == ["Support reply"]
    assert names(model="gpt-4o") == ["Summariser"]
    assert names(author=editor.username) == ["Summariser"]
    facets = selectors.prompt_facets(team=team)
    assert facets.models == ["gpt-4o", "gpt-4o-mini"] and facets.tags == ["Email", "support"]
    with pytest.raises(services.PromptInputError):
        services.prompt_update(prompt=b, name="   ")


def test_variables_preview_counts_tokens_and_names_what_is_missing(make_version):
    version = make_version(content="Dear {{name}}, about {{topic}}")
    preview = services.version_preview(version=version, values={"name": "Ada"})
    assert preview.missing == ["topic"] and not preview.broken and not preview.ok
    assert "Ada" in preview.parts[-1].html and "var-missing" in preview.parts[-1].html
    full = services.version_preview(version=version, values={"name": "Ada", "topic": "tea"})
    assert full.ok and full.tokens and full.tokens > preview.tokens - 10


def test_preview_names_the_line_of_an_unclosed_placeholder(make_version):
    version = make_version(content="line one\nDear {{name, welcome")
    preview = services.version_preview(version=version, values={})
    assert preview.broken == ["message 2 (user) line 2: '{{' is never closed: add '}}' after the variable name"]


def test_running_with_a_missing_variable_names_it(make_version):
    version = make_version(content="Dear {{name}}, about {{topic}}")
    with pytest.raises(VariableError) as caught:
        services.version_request(version=version, values={"name": "Ada"})
    assert "'topic'" in str(caught.value)
    body = services.version_request(version=version, values={"name": "Ada", "topic": "tea"})
    assert body["messages"][-1]["content"] == "Dear Ada, about tea" and body["model"] == "gpt-4o-mini"


def test_values_from_query_treats_blank_as_missing():
    assert services.values_from_query({"var.a": "x", "var.b": "", "other": "1"}, ["a", "b", "c"]) == {"a": "x"}


def test_completion_version_code_uses_the_completions_endpoint(team, owner):
    from apps.chat.code import request_code

    version = services.prompt_version_create(team=team, user=owner, name="Base", mode="completion",
                                             text="Once upon a {{thing}}", model="gemma-3-270m", params={"max_tokens": 20})
    body = services.version_request(version=version, values={"thing": "time"})
    assert body == {"model": "gemma-3-270m", "prompt": "Once upon a time", "max_tokens": 20}
    code = request_code(body, base_url="http://x/v1", key_env="PLAYGROUND_API_KEY", endpoint=services.version_endpoint(version))
    assert "/v1/completions" in code["curl"] and "client.completions.create" in code["python"]


@pytest.mark.django_db(transaction=True)
def test_two_saves_racing_both_keep_their_version(team, owner, editor):
    """Two people save the same prompt at once (two threads, two connections): both versions
    are kept with distinct numbers, neither save is lost."""
    prompt = services.prompt_version_create(team=team, user=owner, name="Raced", messages=[{"role": "user", "content": "v1"}]).prompt
    for round_ in range(3):
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def save(user, text):
            try:
                barrier.wait()
                services.prompt_version_create(team=team, user=user, prompt=prompt, messages=[{"role": "user", "content": text}])
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                close_old_connections()

        threads = [threading.Thread(target=save, args=(u, f"{u.username} {round_}")) for u in (owner, editor)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
    versions = PromptVersion.objects.filter(prompt=prompt).order_by("number")
    assert [v.number for v in versions] == list(range(1, 8))
    assert {v.messages[0]["content"] for v in versions[1:]} == {f"{u} {r}" for u in ("olivia", "edgar") for r in range(3)}
