"""Which parameters each image model takes, and what an image costs."""
from __future__ import annotations

from decimal import Decimal

from apps.images.options import options_for
from apps.proxy.catalog import image_price


def test_families_by_prefix_and_unknown_models_get_plain_options():
    assert options_for("gpt-image-1-mini").family == "gpt-image-1"
    assert options_for("openai/dall-e-3").family == "dall-e-3"
    other = options_for("stablediffusion")
    assert other.family == "other" and not other.qualities and other.sends_response_format
    assert "only prompt, n and size are sent" in other.reason_missing("quality", "stablediffusion")
    page = options_for("dall-e-3").for_page("dall-e-3")
    assert page["max_n"] == 1 and page["reasons"]["n"] == "dall-e-3 makes one image per request."


def test_per_image_prices():
    assert image_price("dall-e-2", size="512x512") == Decimal("0.018")
    assert image_price("dall-e-3", size="1024x1792", quality="hd") == Decimal("0.120")
    assert image_price("dall-e-3", size="256x256") is None  # not a size it makes
    assert image_price("gpt-image-1", size="1024x1024", quality="low") is None  # priced by tokens
