from __future__ import annotations

import pytest


@pytest.fixture
def image_models(upstream):
    """The test upstream lists the three OpenAI image models (and a chat model)."""
    upstream.models = ["gpt-4o-mini", "dall-e-2", "dall-e-3", "gpt-image-1"]
    return upstream.models
