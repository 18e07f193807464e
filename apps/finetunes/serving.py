"""Tuned local models in chat: a model source for the local engine (apps.engine.extensions).

Each succeeded local job adds one model to its team's engine model list. Chat loads the
cached SmolLM2 base, applies the job's LoRA adapter (merged, for speed), and generates with
transformers in a worker thread, streamed token by token through TextIteratorStreamer.
One tuned model stays loaded (about 540 MB in float32); asking for another swaps it.
Closing the stream (Stop, a closed tab) stops generation at the next token.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async

from apps.finetunes.bases import LOCAL_BASE
from apps.finetunes.models import FineTuneJob, JobStatus
from apps.proxy.errors import ProxyError, bad_request

logger = logging.getLogger(__name__)

PREFIX = f"ft:{LOCAL_BASE}:"
CONTEXT_LENGTH = 8192
DEFAULT_MAX_TOKENS = 256


class _Loaded:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.key: str | None = None
        self.model = None
        self.tokenizer = None


_loaded = _Loaded()


def load(adapter: Path):
    """(model, tokenizer) with the adapter merged in; cached for the last adapter asked for."""
    with _loaded.lock:
        if _loaded.key == str(adapter):
            return _loaded.model, _loaded.tokenizer
        from peft import PeftModel

        from apps.finetunes.local import base_cache_dir
        from apps.finetunes.trainer import load_base

        started = time.monotonic()
        base, tokenizer = load_base(base_cache_dir())
        model = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
        model.eval()
        _loaded.key, _loaded.model, _loaded.tokenizer = str(adapter), model, tokenizer
        logger.info("loaded tuned model %s in %.1f s", adapter, time.monotonic() - started)
        return model, tokenizer


def _job_for(model_id: str) -> FineTuneJob | None:
    return (FineTuneJob.objects.filter(local=True, status=JobStatus.SUCCEEDED, fine_tuned_model=model_id)
            .exclude(output_dir="").first())


class TunedModelSource:
    """The engine's extension interface: models(team_id) and chat(model_id, request)."""

    def models(self, team_id: int) -> list[dict[str, Any]]:
        from apps.finetunes.local import missing_packages

        if missing_packages():
            return []
        jobs = (FineTuneJob.objects.filter(team_id=team_id, local=True, status=JobStatus.SUCCEEDED)
                .exclude(fine_tuned_model="").exclude(output_dir="").order_by("-finished_at"))
        out = []
        for job in jobs:
            if not (Path(job.output_dir) / "adapter").exists():
                continue
            out.append({
                "id": job.fine_tuned_model,
                "object": "model",
                "created": int(job.created_at.timestamp()),
                "owned_by": job.team.slug if job.team_id else "local",
                "capabilities": ["chat", "streaming"],
                "context_length": CONTEXT_LENGTH,
                "description": f"LoRA fine-tune of {LOCAL_BASE} (job #{job.pk}{', ' + job.suffix if job.suffix else ''})",
            })
        return out

    def chat(self, model_id: str, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]] | None:
        if not model_id.startswith(PREFIX):
            return None
        return self._chat(model_id, request)

    async def _chat(self, model_id: str, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        job = await sync_to_async(_job_for)(model_id)
        if job is None:
            raise ProxyError(f"The tuned model {model_id} is not available (its job did not succeed or was deleted).",
                             code="model_not_found", status=404, param="model")
        params = _params(request)
        model, tokenizer = await asyncio.to_thread(load, Path(job.output_dir) / "adapter")
        messages = [_plain(m) for m in request.get("messages") or []]
        ident, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())

        def chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: dict | None = None) -> dict[str, Any]:
            choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
            return {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model_id,
                    "system_fingerprint": "playground-local-ft", "choices": choices, **({"usage": usage} if usage else {})}

        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        prompt_ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        prompt_tokens = int(prompt_ids["input_ids"].shape[1])
        if prompt_tokens + params["max_new_tokens"] > CONTEXT_LENGTH:
            raise bad_request(f"{prompt_tokens:,} prompt tokens + {params['max_new_tokens']:,} max output exceed the "
                              f"{CONTEXT_LENGTH:,}-token context of {model_id}. Shorten the conversation.", code="context_length_exceeded")
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        stop = threading.Event()

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return stop.is_set()

        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=120)
        result: dict[str, Any] = {}

        def generate() -> None:
            import torch

            try:
                if params["seed"] is not None:
                    torch.manual_seed(params["seed"])
                with torch.no_grad():
                    out = model.generate(
                        **prompt_ids, streamer=streamer, max_new_tokens=params["max_new_tokens"],
                        do_sample=params["temperature"] > 0, temperature=params["temperature"] or None,
                        top_p=params["top_p"] if params["temperature"] > 0 else None,
                        pad_token_id=tokenizer.eos_token_id, stopping_criteria=StoppingCriteriaList([_Stop()]),
                    )
                result["completion_tokens"] = int(out.shape[1]) - prompt_tokens
                result["ended_by_eos"] = bool(out[0, -1].item() == tokenizer.eos_token_id)
            except Exception as exc:  # surfaced to the consumer below
                result["error"] = exc
                streamer.end()

        thread = threading.Thread(target=generate, name=f"ft-generate-{job.pk}", daemon=True)
        thread.start()
        yield chunk({"role": "assistant", "content": ""})
        produced = ""
        finish = "length"
        try:
            iterator = iter(streamer)
            while True:
                piece = await asyncio.to_thread(next, iterator, None)
                if piece is None:
                    break
                if not piece:
                    continue
                produced += piece
                cut = _stop_at(produced, params["stop"])
                if cut is not None:
                    emit = piece[: max(0, len(piece) - (len(produced) - cut))]
                    if emit:
                        yield chunk({"content": emit})
                    finish = "stop"
                    stop.set()
                    break
                yield chunk({"content": piece})
            await asyncio.to_thread(thread.join)
            if "error" in result:
                raise ProxyError(f"The tuned model failed while generating: {result['error']}", code="engine_error", status=500)
            if finish != "stop" and (result.get("ended_by_eos") or result.get("completion_tokens", 0) < params["max_new_tokens"]):
                finish = "stop"
            completion = result.get("completion_tokens", 0)
            yield chunk({}, finish)
            yield chunk(None, usage={"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                                     "total_tokens": prompt_tokens + completion})
        finally:
            stop.set()  # Stop / closed tab: generation ends at the next token


def _stop_at(text: str, stops: list[str]) -> int | None:
    cuts = [text.find(s) for s in stops if s and s in text]
    return min(cuts) if cuts else None


def _plain(message: dict[str, Any]) -> dict[str, str]:
    content = message.get("content")
    if isinstance(content, list):
        content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    role = message.get("role", "user")
    role = "system" if role == "developer" else ("user" if role in ("tool", "function") else role)
    return {"role": role, "content": content or ""}


def _params(request: dict[str, Any]) -> dict[str, Any]:
    max_tokens = request.get("max_completion_tokens") or request.get("max_tokens") or DEFAULT_MAX_TOKENS
    temperature = request.get("temperature")
    stop = request.get("stop") or []
    try:
        params = {
            "max_new_tokens": int(max_tokens),
            "temperature": 1.0 if temperature is None else float(temperature),
            "top_p": float(request.get("top_p") if request.get("top_p") is not None else 1.0),
            "seed": int(request["seed"]) if request.get("seed") is not None else None,
            "stop": [stop] if isinstance(stop, str) else [str(s) for s in stop][:4],
        }
    except (TypeError, ValueError) as exc:
        raise bad_request(f"A sampling parameter is not a number: {exc}.") from None
    if params["max_new_tokens"] < 1:
        raise bad_request("max_tokens must be at least 1.", param="max_tokens")
    if not 0 <= params["temperature"] <= 2:
        raise bad_request("temperature must be between 0 and 2.", param="temperature")
    return params


source = TunedModelSource()
