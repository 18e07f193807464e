"""What Playground knows about well-known models: context length, prices, capabilities.

This is metadata, not a model list: the models a team can use always come from its
providers (`/v1/models`). A model that is not here is still listed and usable; it just
has no price (cost shows as unknown) until an owner adds one in Settings -> Prices.

Prices are US$ per 1M tokens (input, output), from OpenAI's public price list.
Matching is by longest prefix, so dated snapshots ("gpt-4o-2024-08-06") and fine-tunes
("ft:gpt-4o-mini:acme::abc") inherit their family's entry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class ModelMeta:
    context_length: int | None = None
    input_price: Decimal | None = None  # $ per 1M input tokens
    output_price: Decimal | None = None  # $ per 1M output tokens
    max_output: int | None = None
    capabilities: frozenset[str] = field(default_factory=frozenset)
    note: str = ""


CHAT = frozenset({"chat", "tools", "json_schema", "logprobs", "streaming"})
VISION_CHAT = CHAT | {"vision"}
REASONING = frozenset({"chat", "tools", "json_schema", "streaming", "vision", "reasoning"})


def _m(ctx, inp, out, caps, max_output=None, note="") -> ModelMeta:
    return ModelMeta(
        context_length=ctx,
        input_price=Decimal(inp) if inp is not None else None,
        output_price=Decimal(out) if out is not None else None,
        capabilities=frozenset(caps),
        max_output=max_output,
        note=note,
    )


KNOWN_MODELS: dict[str, ModelMeta] = {
    # chat
    "gpt-5": _m(400_000, "1.25", "10.00", REASONING, 128_000),
    "gpt-5-mini": _m(400_000, "0.25", "2.00", REASONING, 128_000),
    "gpt-5-nano": _m(400_000, "0.05", "0.40", REASONING, 128_000),
    "gpt-4.1": _m(1_047_576, "2.00", "8.00", VISION_CHAT, 32_768),
    "gpt-4.1-mini": _m(1_047_576, "0.40", "1.60", VISION_CHAT, 32_768),
    "gpt-4.1-nano": _m(1_047_576, "0.10", "0.40", VISION_CHAT, 32_768),
    "gpt-4o": _m(128_000, "2.50", "10.00", VISION_CHAT, 16_384),
    "gpt-4o-mini": _m(128_000, "0.15", "0.60", VISION_CHAT, 16_384),
    "chatgpt-4o-latest": _m(128_000, "5.00", "15.00", VISION_CHAT, 16_384),
    "o1": _m(200_000, "15.00", "60.00", REASONING, 100_000),
    "o3": _m(200_000, "2.00", "8.00", REASONING, 100_000),
    "o3-mini": _m(200_000, "1.10", "4.40", REASONING - {"vision"}, 100_000),
    "o4-mini": _m(200_000, "1.10", "4.40", REASONING, 100_000),
    "gpt-4-turbo": _m(128_000, "10.00", "30.00", VISION_CHAT, 4_096),
    "gpt-4": _m(8_192, "30.00", "60.00", CHAT, 8_192),
    "gpt-3.5-turbo": _m(16_385, "0.50", "1.50", CHAT, 4_096),
    # legacy completions
    "gpt-3.5-turbo-instruct": _m(4_096, "1.50", "2.00", {"completion", "logprobs", "streaming"}, 4_096),
    "davinci-002": _m(16_384, "2.00", "2.00", {"completion", "logprobs", "streaming", "finetune"}),
    "babbage-002": _m(16_384, "0.40", "0.40", {"completion", "logprobs", "streaming", "finetune"}),
    # embeddings (input price only)
    "text-embedding-3-small": _m(8_191, "0.02", None, {"embeddings", "dimensions"}, note="1536 dimensions"),
    "text-embedding-3-large": _m(8_191, "0.13", None, {"embeddings", "dimensions"}, note="3072 dimensions"),
    "text-embedding-ada-002": _m(8_191, "0.10", None, {"embeddings"}, note="1536 dimensions"),
    # images, audio: priced per image / minute / character, shown without a token price
    "gpt-image-1": _m(None, "5.00", "40.00", {"image", "image_edit"}),
    "dall-e-3": _m(None, None, None, {"image"}, note="$0.04-0.12 per image"),
    "dall-e-2": _m(None, None, None, {"image", "image_edit", "image_variation"}, note="$0.016-0.02 per image"),
    "tts-1": _m(None, None, None, {"tts"}, note="$15 per 1M characters"),
    "tts-1-hd": _m(None, None, None, {"tts"}, note="$30 per 1M characters"),
    "gpt-4o-mini-tts": _m(None, "0.60", "12.00", {"tts"}),
    "whisper-1": _m(None, None, None, {"stt", "translation"}, note="$0.006 per minute"),
    "gpt-4o-transcribe": _m(None, "2.50", "10.00", {"stt"}),
    "gpt-4o-mini-transcribe": _m(None, "1.25", "5.00", {"stt"}),
}

# Fine-tunable bases (OpenAI's fine-tuning guide), for the job form.
FINETUNABLE = ["gpt-4.1-mini-2025-04-14", "gpt-4.1-nano-2025-04-14", "gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06"]


def _base_id(model: str) -> str:
    # "ft:gpt-4o-mini-2024-07-18:acme::abc123" -> "gpt-4o-mini-2024-07-18"
    if model.startswith("ft:"):
        return model.split(":")[1]
    return model.rsplit("/", 1)[-1]  # "openai/gpt-4o" (routers) -> "gpt-4o"


def lookup(model: str) -> ModelMeta | None:
    """The catalog entry for a model id, by longest prefix ("gpt-4o-mini-2024..." -> "gpt-4o-mini")."""
    base = _base_id(model)
    if base in KNOWN_MODELS:
        return KNOWN_MODELS[base]
    best = None
    for key in KNOWN_MODELS:
        if base.startswith(key + "-") and (best is None or len(key) > len(best)):
            best = key
    return KNOWN_MODELS[best] if best else None


# US$ per image for the models priced that way (OpenAI's price list); gpt-image-1 is
# priced by tokens above, from the usage its replies report.
IMAGE_PRICES: dict[str, dict[str, dict[str, str]]] = {
    "dall-e-2": {"standard": {"256x256": "0.016", "512x512": "0.018", "1024x1024": "0.020"}},
    "dall-e-3": {
        "standard": {"1024x1024": "0.040", "1792x1024": "0.080", "1024x1792": "0.080"},
        "hd": {"1024x1024": "0.080", "1792x1024": "0.120", "1024x1792": "0.120"},
    },
}


def image_price(model: str, *, size: str, quality: str | None = None) -> Decimal | None:
    """$ per image for a per-image priced model at this size and quality, else None."""
    base = _base_id(model)
    family = next((k for k in IMAGE_PRICES if base == k or base.startswith(k + "-")), None)
    if family is None:
        return None
    price = IMAGE_PRICES[family].get(quality or "standard", {}).get(size)
    return Decimal(price) if price else None
