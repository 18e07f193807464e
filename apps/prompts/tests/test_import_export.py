"""Export a prompt with every version; import it into another team; bad files name the field and line."""
from __future__ import annotations

import json

import pytest

from apps.prompts import services
from apps.prompts.models import Prompt

pytestmark = pytest.mark.django_db


def test_export_then_import_into_another_team_recreates_everything(make_version, owner, other_team, outsider):
    v1 = make_version(content="one {{x}}", params={"temperature": 0.3}, commit_message="first")
    make_version(v1.prompt, content="two", tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])
    v3 = make_version(v1.prompt, content="three", response_format={"type": "json_object"})
    services.prompt_update(prompt=v1.prompt, name="Support reply", description="d", tags="a, b", folder="x/y")
    services.label_set(version=v3, name="production", user=owner)
    data = services.prompt_export(prompt=v1.prompt)
    assert data["format"] == services.EXPORT_FORMAT and [v["number"] for v in data["versions"]] == [1, 2, 3]
    text = json.dumps(data, indent=2)

    imported = services.prompt_import(team=other_team, user=outsider, raw=text.encode())
    assert imported.team == other_team and imported.name == "Support reply" and imported.tags == ["a", "b"] and imported.folder == "x/y"
    versions = list(imported.versions.order_by("number"))
    assert [v.number for v in versions] == [1, 2, 3]
    assert versions[0].params == {"temperature": 0.3} and versions[0].commit_message == "first"
    assert versions[1].tools[0]["function"]["name"] == "f" and versions[2].response_format == {"type": "json_object"}
    assert imported.labels.get().version == versions[2]
    assert Prompt.objects.filter(team=v1.prompt.team).count() == 1  # the original is untouched


def _export(**changes):
    data = {"format": 1, "kind": "playground.prompt", "prompt": {"name": "P"},
            "versions": [{"number": 1, "mode": "chat", "messages": [{"role": "user", "content": "hi"}]}]}
    data.update(changes)
    return data


@pytest.mark.parametrize("data, expected", [
    (_export(format=2), "format (line 2, column 13): this file is format 2, written by a newer Playground"),
    (_export(versions=[{"number": 1, "messages": [{"role": "user", "content": "a"}]},
                       {"number": 2, "messages": [{"role": "user", "content": "a"}]},
                       {"number": 3, "messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]}]),
     "versions[2].messages[1].role (line 34, column 19): expected one of system/user/assistant/tool, got 'robot'"),
    (_export(prompt={"title": "x"}), "prompt.name (line 4, column 13): missing: expected a string"),
    (_export(versions=[]), "versions (line 7, column 15): the list is empty"),
    (_export(versions="all of them"), "versions (line 7, column 15): expected a list of versions, got a string"),
    (_export(versions=[{"mode": "poem", "messages": []}]), "versions[0].mode (line 9, column 15): expected one of chat/completion"),
    (_export(labels={"production": 9}), "labels.production (line 20, column 19): expected the number of a version in this file (1)"),
])
def test_bad_shapes_name_the_field_and_line(data, expected, team, owner):
    with pytest.raises(services.ImportError_) as caught:
        services.prompt_import(team=team, user=owner, raw=json.dumps(data, indent=2))
    assert expected in caught.value.message
    assert not Prompt.objects.exists()


@pytest.mark.parametrize("raw, expected", [
    (b"", "The file is empty"),
    (b"\xff\xfe\x00bad", "not UTF-8"),
    (b'{"format": 1,\n  "prompt": }', "Not valid JSON at line 2, column 13"),
    (b"[1, 2]", "(the file) (line 1, column 1): expected an object"),
])
def test_broken_files_say_what_is_wrong(raw, expected, team, owner):
    with pytest.raises(services.ImportError_) as caught:
        services.prompt_import(team=team, user=owner, raw=raw)
    assert expected in caught.value.message


def test_positions_point_at_the_value():
    from apps.prompts.jsonpos import line_col, path_label, positions

    text = '{\n  "a": [1, {"b": "x"}],\n  "c": null\n}'
    where = positions(text)
    assert line_col(text, where[("a", 1, "b")]) == (2, 18)
    assert line_col(text, where[("c",)]) == (3, 8)
    assert path_label(("versions", 2, "messages", 0, "role")) == "versions[2].messages[0].role"
