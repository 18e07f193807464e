from __future__ import annotations

import pytest


@pytest.fixture
def only_upstream(team, upstream_provider):
    """Tests about the upstream do not need the local engine listed (or loaded)."""
    team.providers.filter(kind="local").update(enabled=False)
    return upstream_provider


@pytest.fixture
def image_models(upstream):
    """The test upstream lists the three OpenAI image models (and a chat model)."""
    upstream.models = ["gpt-4o-mini", "dall-e-2", "dall-e-3", "gpt-image-1"]
    return upstream.models
