"""The speech round trip's sentence, and what counts as hearing it back.

Piper samples its voice (noise in the model, not seedable from Python), so each synthesis
of SENTENCE sounds a little different, and now and then whisper-tiny hears one word
wrongly ("jumped" for "jumps", seen in CI-like runs). Hearing the sentence back means
every word but at most one, in order; a wrong model, silence or garbled audio misses by far.
"""
from __future__ import annotations

import difflib
import re

SENTENCE = "The quick brown fox jumps over the lazy dog."


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9 ]", " ", text.lower()).split()


def heard_back(text: str, sentence: str = SENTENCE) -> bool:
    """`text` is `sentence` with at most one word misheard."""
    heard, said = words(text), words(sentence)
    matcher = difflib.SequenceMatcher(a=said, b=heard, autojunk=False)
    matched = sum(block.size for block in matcher.get_matching_blocks())
    return matched >= len(said) - 1 and abs(len(heard) - len(said)) <= 1
