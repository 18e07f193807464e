from __future__ import annotations

import pytest


@pytest.fixture
def make_version(team, owner):
    from apps.prompts.services import prompt_version_create

    def make(prompt=None, *, name="Support reply", content="Hello {{name}}", system="You are kind.", user=None, **kwargs):
        messages = kwargs.pop("messages", None)
        if messages is None:
            messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]
        return prompt_version_create(team=team, user=user or owner, prompt=prompt, name=name, messages=messages,
                                     model=kwargs.pop("model", "gpt-4o-mini"), **kwargs)

    return make
