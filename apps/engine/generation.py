"""Token generation with llama.cpp, producing OpenAI-shaped stream chunks.

This runs in a worker thread (see provider.py), never on the event loop. It drives
`Llama.generate()` one token at a time instead of `create_chat_completion()` because the
engine needs things the high-level call does not give cheaply:

- a cancel flag checked between tokens *and* between 128-token prompt batches, so Stop
  frees the model within one token (~15-40 ms here), even during a long prompt;
- logprobs without `logits_all=True` (which would keep n_ctx x vocab floats, 1.6 GB for
  SmolLM2 and 8 GB for Gemma's 262k vocabulary): they are read from the last position's
  logits right after each token is sampled;
- exact usage from the model's own tokenizer, and the OpenAI chunk shape with our ids.

The prompt prefix already in the KV cache is reused (multi-turn chat, n > 1).
"""
from __future__ import annotations

import codecs
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

PREFILL_BATCH = 128


class Cancelled(Exception):
    """The consumer went away; stop generating."""


@dataclass
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logprobs: bool = False
    top_logprobs: int = 0
    grammar: str | None = None  # GBNF text


@dataclass
class ChoiceResult:
    text: str
    finish_reason: str
    completion_tokens: int


def _eval_prompt(llm: Any, tokens: list[int], cancel: threading.Event, *, reuse: bool) -> None:
    """Put the prompt in the KV cache in small batches, reusing the cached prefix.

    With a seed the prompt is evaluated from scratch: a reused prefix gives logits that
    differ in the last bits (other batch shapes), enough to change a sampled token, and
    "same seed, same text" matters more there than the saved milliseconds.
    """
    prefix = 0
    if reuse:
        for a, b in zip(llm._input_ids.tolist(), tokens):
            if a != b:
                break
            prefix += 1
    # The last prompt token is always evaluated again: its logits are the first sample's.
    prefix = min(prefix, len(tokens) - 1)
    if prefix <= 0:
        llm.reset()
        prefix = 0
    else:
        llm._ctx.kv_cache_seq_rm(-1, prefix, -1)
        llm.n_tokens = prefix
    for start in range(prefix, len(tokens), PREFILL_BATCH):
        if cancel.is_set():
            raise Cancelled
        llm.eval(tokens[start:start + PREFILL_BATCH])


def _last_logits(llm: Any) -> np.ndarray:
    import llama_cpp

    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),))


def _logprob_entry(llm: Any, token: int, piece: bytes, top: int) -> dict[str, Any]:
    logits = _last_logits(llm).astype(np.float64)
    peak = logits.max()
    lse = peak + math.log(float(np.exp(logits - peak).sum()))
    entry: dict[str, Any] = {
        "token": piece.decode("utf-8", errors="replace"),
        "logprob": float(logits[token] - lse),
        "bytes": list(piece),
        "top_logprobs": [],
    }
    if top:
        ids = np.argpartition(logits, -top)[-top:]
        ids = ids[np.argsort(-logits[ids])]
        for tid in ids:
            tb = llm.detokenize([int(tid)])
            entry["top_logprobs"].append(
                {"token": tb.decode("utf-8", errors="replace"), "logprob": float(logits[tid] - lse), "bytes": list(tb)}
            )
    return entry


def _stop_hold(text: str, stops: list[str]) -> int:
    """How many trailing characters might be the start of a stop sequence (kept back)."""
    hold = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                hold = max(hold, size)
                break
    return hold


def generate_choice(
    llm: Any,
    prompt_tokens: list[int],
    params: SamplingParams,
    *,
    cancel: threading.Event,
    emit: Callable[[str, list[dict[str, Any]]], None],
) -> ChoiceResult:
    """Generate one choice; `emit(text, logprob_entries)` is called as text becomes final."""
    import llama_cpp
    from llama_cpp import LlamaGrammar

    grammar = LlamaGrammar.from_string(params.grammar, verbose=False) if params.grammar else None
    _eval_prompt(llm, prompt_tokens, cancel, reuse=params.seed is None)
    llm.set_seed(params.seed if params.seed is not None else int.from_bytes(uuid.uuid4().bytes[:4], "little"))

    vocab = llm._model.vocab
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    emitted = ""  # text already sent
    pending: list[tuple[str, dict[str, Any] | None]] = []  # (text, logprob entry) held back
    produced = 0
    finish = "length"
    context = list(prompt_tokens)

    def pending_text() -> str:
        return "".join(t for t, _ in pending)

    def flush(upto: int) -> None:
        """Emit held-back pieces whose text ends within the first `upto` pending characters."""
        nonlocal emitted, pending
        out_text, out_lp, used, size = [], [], 0, 0
        for text, lp in pending:
            if size + len(text) > upto:
                break
            size += len(text)
            used += 1
            out_text.append(text)
            if lp is not None:
                out_lp.append(lp)
        if used:
            pending = pending[used:]
            joined = "".join(out_text)
            emitted += joined
            if joined or out_lp:
                emit(joined, out_lp)

    if params.max_tokens <= 0:
        return ChoiceResult(text="", finish_reason="length", completion_tokens=0)
    for token in llm.generate(
        prompt_tokens,
        temp=params.temperature,
        top_p=params.top_p,
        top_k=0 if params.temperature > 0 else 40,  # OpenAI has no top_k: sample the full distribution
        min_p=0.0,
        typical_p=1.0,
        repeat_penalty=1.0,
        presence_penalty=params.presence_penalty,
        frequency_penalty=params.frequency_penalty,
        grammar=grammar,
    ):
        if cancel.is_set():
            raise Cancelled
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            finish = "stop"
            break
        produced += 1
        piece = llm.detokenize([token], prev_tokens=context)
        context.append(token)
        entry = _logprob_entry(llm, token, piece, params.top_logprobs) if params.logprobs else None
        pending.append((decoder.decode(piece), entry))
        if params.stop:
            text = pending_text()
            window = emitted[-max(len(s) for s in params.stop):] + text
            hit = min((window.find(s) for s in params.stop if s in window), default=-1)
            if hit >= 0:
                keep = hit - (len(window) - len(text))
                if keep > 0:
                    # Emit the text before the stop sequence, with the logprobs of the tokens
                    # that produced it.
                    head = text[:keep]
                    lps = [lp for _, lp in pending if lp is not None]
                    emitted += head
                    emit(head, lps)
                pending = []
                finish = "stop"
                break
            flush(len(text) - _stop_hold(emitted + text, params.stop))
        else:
            flush(len(pending_text()))
        if produced >= params.max_tokens:
            break
    tail = decoder.decode(b"", final=True)
    if tail:
        pending.append((tail, None))
    if finish != "stop" or pending:
        flush(len(pending_text()))
    return ChoiceResult(text=emitted, finish_reason=finish, completion_tokens=produced)


# -- chunk shapes -----------------------------------------------------------------------------

def chat_chunk(ident: str, created: int, model: str, choice: dict[str, Any], usage: dict | None = None) -> dict[str, Any]:
    return {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "playground-local",
        "choices": [choice] if choice else [],
        **({"usage": usage} if usage is not None else {}),
    }


def completion_chunk(ident: str, created: int, model: str, choice: dict[str, Any] | None, usage: dict | None = None) -> dict[str, Any]:
    return {
        "id": ident,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [choice] if choice else [],
        **({"usage": usage} if usage is not None else {}),
    }


def new_id(prefix: str) -> tuple[str, int]:
    return f"{prefix}-{uuid.uuid4().hex[:24]}", int(time.time())


def legacy_logprobs(entries: list[dict[str, Any]], offset: int) -> dict[str, Any]:
    """Chat-shaped logprob entries in the legacy completions shape (parallel lists)."""
    tokens, lps, tops, offsets = [], [], [], []
    for entry in entries:
        tokens.append(entry["token"])
        lps.append(entry["logprob"])
        tops.append({t["token"]: t["logprob"] for t in entry["top_logprobs"]})
        offsets.append(offset)
        offset += len(entry["token"])
    return {"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets}
