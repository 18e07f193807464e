import pytest

from apps.prompts.variables import VariableError, check, names_in, names_in_all, render, render_messages


def test_names_in_order_of_first_appearance_with_spaces_inside_braces():
    assert names_in("Hi {{ name }}, about {{topic}} and {{name}} again") == ["name", "topic"]
    assert names_in_all(["{{a}}", "{{b}} {{a}}"]) == ["a", "b"]


def test_render_fills_every_placeholder():
    assert render("Dear {{name}}, re: {{ subject }}", {"name": "Ada", "subject": "tea"}) == "Dear Ada, re: tea"
    assert render("empty is a value: [{{x}}]", {"x": ""}) == "empty is a value: []"


def test_a_missing_value_names_the_variable():
    with pytest.raises(VariableError) as caught:
        render("Dear {{name}}, re: {{subject}}", {"name": "Ada"}, where="message 2 (user)")
    assert "'subject'" in str(caught.value) and "message 2 (user)" in str(caught.value)


@pytest.mark.parametrize("text, fragment, line", [
    ("line one\nDear {{name, welcome", "never closed", 2),
    ("{{}} there", "no variable name", 1),
    ("a\nb\n{{first name}}", "'{{first name}}' is not a valid variable name", 3),
])
def test_broken_placeholders_are_reported_with_their_line(text, fragment, line):
    with pytest.raises(VariableError) as caught:
        check(text, where="text")
    assert fragment in str(caught.value) and caught.value.line == line


def test_render_messages_leaves_images_alone_and_labels_errors():
    messages = [
        {"role": "system", "content": "You help {{team}}."},
        {"role": "user", "content": [{"type": "text", "text": "Look at {{thing}}"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
    ]
    out = render_messages(messages, {"team": "sales", "thing": "this"})
    assert out[0]["content"] == "You help sales." and out[1]["content"][0]["text"] == "Look at this"
    assert out[1]["content"][1] == messages[1]["content"][1] and messages[0]["content"] == "You help {{team}}."
    with pytest.raises(VariableError, match=r"message 2 \(user\).*'thing'"):
        render_messages(messages, {"team": "sales"})
