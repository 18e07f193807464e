"""The embedded local engine as a provider (kind "local"): real small models, in process.

Text generation runs in a worker thread per generation, feeding an asyncio.Queue; the
event loop only moves finished chunks. The scheduler allows ENGINE_CONCURRENCY_PER_MODEL
generations per model at once and queues the rest in order (QueuePosition events while
waiting). Closing the stream (Stop, a closed connection, a cancelled task) sets a flag the
thread checks between tokens, so the model is free again within one token.

What a parameter cannot do here is refused with `not_supported` naming the parameter,
never silently ignored.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async

from apps.engine import catalog, extensions, runtime
from apps.engine.generation import (
    Cancelled,
    SamplingParams,
    chat_chunk,
    completion_chunk,
    generate_choice,
    legacy_logprobs,
    new_id,
)
from apps.engine.scheduler import scheduler
from apps.proxy.errors import ProxyError, bad_request, not_supported
from apps.proxy.providers.base import AudioResult, Provider, StreamEvent, Upload

logger = logging.getLogger(__name__)

CHAT_ROLES = {"system", "developer", "user", "assistant", "tool"}
# Accepted and meaningful; anything else in a request is refused by name.
CHAT_PARAMS = {
    "model", "messages", "stream", "stream_options", "temperature", "top_p", "max_tokens",
    "max_completion_tokens", "stop", "seed", "presence_penalty", "frequency_penalty", "n",
    "logprobs", "top_logprobs", "response_format", "tools", "tool_choice", "parallel_tool_calls",
    "user", "metadata", "store",
}
COMPLETION_PARAMS = {
    "model", "prompt", "stream", "stream_options", "temperature", "top_p", "max_tokens", "stop",
    "seed", "presence_penalty", "frequency_penalty", "n", "logprobs", "echo", "best_of", "user",
}
_SENTINEL = object()


@dataclass
class LocalEngineProvider(Provider):
    def __post_init__(self) -> None:
        self.kind = "local"
        self.label = "Local engine"

    # -- models -----------------------------------------------------------------------------
    async def list_models(self) -> list[dict[str, Any]]:
        models = []
        for meta in catalog.LOCAL_MODELS.values():
            if meta.locate() is None:
                continue  # not installed: the management page says which package to add
            models.append(
                {
                    "id": meta.id,
                    "object": "model",
                    "created": 0,
                    "owned_by": meta.owned_by,
                    "capabilities": sorted(meta.capabilities),
                    "context_length": meta.context_length,
                    "description": meta.description,
                }
            )
        models.extend(await sync_to_async(extensions.models_for_team)(self.row.team_id))
        return models

    def _text_model(self, model: str, kind: str) -> catalog.LocalModel:
        meta = catalog.get(model)
        if meta is None:
            raise runtime.missing_error(model)
        if meta.kind != kind:
            other = {"chat": "chat completions", "completion": "text completions (/v1/completions)"}
            right = [m.id for m in catalog.LOCAL_MODELS.values() if m.kind == kind]
            raise bad_request(
                f"{model} is not a {other.get(kind, kind)} model. Use {', '.join(right)} for that"
                + (f"; {model} is for {other.get(meta.kind, meta.kind)}." if meta.kind in other else "."),
                param="model", code="model_not_supported",
            )
        return meta

    # -- chat -------------------------------------------------------------------------------
    def chat(self, request: dict[str, Any]) -> AsyncIterator[StreamEvent]:
        return self._chat(request)

    async def _chat(self, request: dict[str, Any]) -> AsyncIterator[StreamEvent]:
        model = str(request.get("model") or "")
        if catalog.get(model) is None:
            source = await sync_to_async(extensions.owner_of)(self.row.team_id, model)
            if source is not None:
                async with aclosing(self._extension_chat(source, model, request)) as events:
                    async for event in events:
                        yield event
                return
        self._text_model(model, "chat")
        _refuse_unknown(request, CHAT_PARAMS, "chat completions")
        messages = _check_messages(request.get("messages"))
        tool_mode = _tool_mode(request)
        params, n = _sampling(request, chat=True)
        grammar = _grammar(request.get("response_format"), tool_mode)
        if tool_mode is not None:
            messages = _with_tool_instructions(messages, tool_mode)
        if params.logprobs and tool_mode is not None:
            raise not_supported("logprobs with a forced tool call are not supported by the local engine.", param="logprobs")
        params.grammar = grammar

        llm = await asyncio.to_thread(runtime.get, model)
        prompt_tokens = await asyncio.to_thread(_chat_prompt_tokens, llm, messages)
        params.max_tokens = _check_window(model, len(prompt_tokens), request, params.max_tokens)
        include_usage = True
        ident, created = new_id("chatcmpl")

        def work(llm, cancel, put) -> None:
            completion = 0
            for index in range(n):
                put(chat_chunk(ident, created, model, {"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}))
                seed = params.seed + index if params.seed is not None else None
                choice_params = SamplingParams(**{**params.__dict__, "seed": seed})
                if tool_mode is not None:
                    parts: list[str] = []
                    result = generate_choice(llm, prompt_tokens, choice_params, cancel=cancel, emit=lambda text, lps: parts.append(text))
                    completion += result.completion_tokens
                    for delta in _tool_call_deltas("".join(parts), ident, index):
                        put(chat_chunk(ident, created, model, {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}))
                    finish = "tool_calls" if result.finish_reason == "stop" else result.finish_reason
                else:
                    def emit(text: str, lps: list[dict[str, Any]], index=index) -> None:
                        put(chat_chunk(ident, created, model, {
                            "index": index,
                            "delta": {"content": text},
                            "logprobs": {"content": lps, "refusal": None} if params.logprobs else None,
                            "finish_reason": None,
                        }))
                    result = generate_choice(llm, prompt_tokens, choice_params, cancel=cancel, emit=emit)
                    completion += result.completion_tokens
                    finish = result.finish_reason
                put(chat_chunk(ident, created, model, {"index": index, "delta": {}, "logprobs": None, "finish_reason": finish}))
            if include_usage:
                usage = {"prompt_tokens": len(prompt_tokens), "completion_tokens": completion, "total_tokens": len(prompt_tokens) + completion}
                put(chat_chunk(ident, created, model, {}, usage=usage))

        # aclosing: when our consumer closes us, the inner generator's cleanup (the cancel
        # flag) must run now, not whenever the garbage collector finalises it.
        async with aclosing(_scheduled(model, work)) as events:
            async for event in events:
                yield event

    async def _extension_chat(self, source: Any, model: str, request: dict[str, Any]) -> AsyncIterator[StreamEvent]:
        _check_messages(request.get("messages"))
        ticket = scheduler.enqueue(model)
        stream = None
        try:
            async with aclosing(scheduler.wait(ticket)) as positions:
                async for position in positions:
                    yield position
            stream = source.chat(model, request)
            if stream is None:
                raise runtime.missing_error(model)
            async for chunk in stream:
                yield chunk
        finally:
            if stream is not None and hasattr(stream, "aclose"):
                await stream.aclose()
            scheduler.release(ticket)

    # -- completions --------------------------------------------------------------------------
    def completion(self, request: dict[str, Any]) -> AsyncIterator[StreamEvent]:
        return self._completion(request)

    async def _completion(self, request: dict[str, Any]) -> AsyncIterator[StreamEvent]:
        model = str(request.get("model") or "")
        self._text_model(model, "completion")
        _refuse_unknown(request, COMPLETION_PARAMS, "text completions")
        prompts = _check_prompts(request.get("prompt"))
        params, n = _sampling(request, chat=False)
        best_of = request.get("best_of")
        if best_of not in (None, 1, n):
            raise not_supported("best_of (server-side ranking of extra samples) is not supported by the local engine; use n.", param="best_of")
        echo = bool(request.get("echo"))

        llm = await asyncio.to_thread(runtime.get, model)
        tokenized = [await asyncio.to_thread(_completion_tokens, llm, p) for p in prompts]
        # Every prompt must fit; without max_tokens the budget is what the longest one leaves.
        params.max_tokens = min(_check_window(model, len(tokens), request, params.max_tokens) for tokens in tokenized)
        ident, created = new_id("cmpl")

        def work(llm, cancel, put) -> None:
            completion = 0
            prompt_total = 0
            for p_index, (prompt, tokens) in enumerate(zip(prompts, tokenized)):
                prompt_total += len(tokens)
                for k in range(n):
                    index = p_index * n + k
                    seed = params.seed + k if params.seed is not None else None
                    # Offsets count from the start of the prompt, as OpenAI's legacy logprobs do.
                    offset = len(prompt)
                    if echo:
                        put(completion_chunk(ident, created, model, {"index": index, "text": prompt, "logprobs": None, "finish_reason": None}))

                    def emit(text: str, lps: list[dict[str, Any]], index=index) -> None:
                        nonlocal offset
                        logprobs = legacy_logprobs(lps, offset) if params.logprobs else None
                        offset += len(text)
                        put(completion_chunk(ident, created, model, {"index": index, "text": text, "logprobs": logprobs, "finish_reason": None}))

                    result = generate_choice(llm, tokens, SamplingParams(**{**params.__dict__, "seed": seed}), cancel=cancel, emit=emit)
                    completion += result.completion_tokens
                    put(completion_chunk(ident, created, model, {"index": index, "text": "", "logprobs": None, "finish_reason": result.finish_reason}))
            usage = {"prompt_tokens": prompt_total, "completion_tokens": completion, "total_tokens": prompt_total + completion}
            put(completion_chunk(ident, created, model, None, usage=usage))

        # aclosing: when our consumer closes us, the inner generator's cleanup (the cancel
        # flag) must run now, not whenever the garbage collector finalises it.
        async with aclosing(_scheduled(model, work)) as events:
            async for event in events:
                yield event

    # -- images: nothing small enough ships on PyPI ----------------------------------------------
    def _no_images(self, what: str) -> ProxyError:
        return not_supported(
            f"The local engine cannot do {what}: no image model small enough to run here ships on PyPI. "
            "Add an OpenAI provider (or an OpenAI-compatible server with an image model) in Settings -> Providers."
        )

    async def image_generate(self, request: dict[str, Any]) -> dict[str, Any]:
        raise self._no_images("image generation")

    async def image_edit(self, image: Upload, mask: Upload | None, params: dict[str, Any]) -> dict[str, Any]:
        raise self._no_images("image edits")

    async def image_variation(self, image: Upload, params: dict[str, Any]) -> dict[str, Any]:
        raise self._no_images("image variations")

    # -- embeddings and audio ------------------------------------------------------------------
    async def embeddings(self, request: dict[str, Any]) -> dict[str, Any]:
        from apps.engine import audio_embed

        return await audio_embed.embeddings(request)

    async def speech(self, request: dict[str, Any]) -> AudioResult:
        from apps.engine import audio_embed

        return await audio_embed.speech(request)

    async def voices(self, model: str) -> list[str]:
        meta = catalog.get(model)
        return list(meta.voices) if meta else []

    async def transcription(self, upload: Upload, params: dict[str, Any], *, translate: bool = False) -> dict[str, Any] | str:
        from apps.engine import audio_embed

        return await audio_embed.transcription(upload, params, translate=translate)


# -- scheduling + the worker thread -------------------------------------------------------------

async def _scheduled(model: str, work) -> AsyncIterator[StreamEvent]:
    """Wait for a slot (yielding QueuePosition), run `work` in a thread, yield its chunks."""
    ticket = scheduler.enqueue(model)
    cancel = threading.Event()
    started = False
    try:
        async with aclosing(scheduler.wait(ticket)) as positions:
            async for position in positions:
                yield position
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def put(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening any more
                cancel.set()

        def run() -> None:
            try:
                llm = runtime.get(model, ticket.slot or 0)
                work(llm, cancel, put)
            except Cancelled:
                logger.info("generation on %s stopped (cancelled)", model)
            except ProxyError as exc:
                put(exc)
            except Exception as exc:  # the consumer gets a clear error; the log keeps the trace
                logger.exception("local generation on %s failed", model)
                put(ProxyError(f"The local engine failed while generating with {model}: {type(exc).__name__}: {exc}", code="engine_error", status=500))
            finally:
                scheduler.release(ticket)
                put(_SENTINEL)

        thread = threading.Thread(target=run, name=f"engine-{model}-{ticket.id}", daemon=True)
        thread.start()
        started = True
        while True:
            item = await queue.get()
            if item is _SENTINEL:
                return
            if isinstance(item, ProxyError):
                raise item
            yield item
    finally:
        cancel.set()
        if not started:
            scheduler.release(ticket)


# -- request checks -----------------------------------------------------------------------------

def _present(value: Any) -> bool:
    return value is not None and value != [] and value != {}


def _refuse_unknown(request: dict[str, Any], allowed: set[str], what: str) -> None:
    for key, value in request.items():
        if key not in allowed and _present(value):
            raise not_supported(
                f"The local engine does not support the parameter '{key}' for {what}. Remove it, or use an "
                "OpenAI or OpenAI-compatible provider that does.",
                param=key,
            )
    if request.get("store"):
        raise not_supported("store=true (OpenAI's stored completions) is not available on the local engine; runs are recorded by Playground anyway.", param="store")


def _number(request: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = request.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad_request(f"'{key}' must be a number between {low} and {high}.", param=key)
    if not low <= value <= high:
        raise bad_request(f"'{key}' is {value}; it must be between {low} and {high}.", param=key)
    return float(value)


def _integer(request: dict[str, Any], key: str, low: int, high: int | None = None) -> int | None:
    value = request.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"'{key}' must be a whole number.", param=key)
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise bad_request(f"'{key}' is {value}; it must be {bounds}.", param=key)
    return value


def _sampling(request: dict[str, Any], *, chat: bool) -> tuple[SamplingParams, int]:
    stop = request.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is None:
        stop = []
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > 4:
        raise bad_request("'stop' must be a string or a list of up to 4 non-empty strings.", param="stop")
    n = _integer(request, "n", 1, 8) or 1
    max_key = "max_completion_tokens" if chat and request.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = _integer(request, max_key, 1)
    seed = _integer(request, "seed", -(2**63))
    if chat:
        logprobs = request.get("logprobs")
        if logprobs is not None and not isinstance(logprobs, bool):
            raise bad_request("For chat, 'logprobs' is true or false; use 'top_logprobs' (0-20) for alternatives.", param="logprobs")
        top = _integer(request, "top_logprobs", 0, 20) or 0
        if top and not logprobs:
            raise bad_request("'top_logprobs' needs 'logprobs': true.", param="top_logprobs")
        want_logprobs = bool(logprobs)
    else:
        top = _integer(request, "logprobs", 0, 5)
        want_logprobs = top is not None
        top = top or 0
    params = SamplingParams(
        max_tokens=max_tokens or 0,  # 0 = the rest of the context window (set by _check_window)
        temperature=_number(request, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(request, "top_p", 1.0, 0.0, 1.0),
        seed=(seed % (2**32)) if seed is not None else None,
        stop=stop,
        presence_penalty=_number(request, "presence_penalty", 0.0, -2.0, 2.0),
        frequency_penalty=_number(request, "frequency_penalty", 0.0, -2.0, 2.0),
        logprobs=want_logprobs,
        top_logprobs=top,
    )
    return params, n


def _content_text(content: Any, index: int) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                texts.append(str(part.get("text") or ""))
            elif kind in ("image_url", "input_image", "input_audio", "file"):
                raise not_supported(
                    f"messages[{index}] has a {kind} part, but the local chat model reads text only. "
                    "Use a vision or audio model of an OpenAI or OpenAI-compatible provider.",
                    param=f"messages[{index}].content",
                )
            else:
                raise bad_request(f"messages[{index}].content has a part of unknown type {kind!r}.", param=f"messages[{index}].content")
        return "\n".join(texts)
    raise bad_request(f"messages[{index}].content must be a string or a list of parts.", param=f"messages[{index}].content")


def _check_messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' is empty: add at least one message (for example a user message).", param="messages")
    out = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad_request(f"messages[{index}] must be an object with 'role' and 'content'.", param=f"messages[{index}]")
        role = message.get("role")
        if role not in CHAT_ROLES:
            raise bad_request(
                f"messages[{index}] has the unknown role {role!r}; use one of: system, developer, user, assistant, tool.",
                param=f"messages[{index}].role",
            )
        text = _content_text(message.get("content"), index)
        if role == "assistant" and message.get("tool_calls"):
            calls = [
                {"name": (c.get("function") or {}).get("name"), "arguments": (c.get("function") or {}).get("arguments")}
                for c in message["tool_calls"] if isinstance(c, dict)
            ]
            text = (text + "\n" if text else "") + json.dumps(calls[0] if len(calls) == 1 else calls)
        # SmolLM2's template knows system/user/assistant; "developer" is OpenAI's newer name for system.
        out.append({"role": "system" if role == "developer" else role, "content": text})
    return out


def _check_prompts(prompt: Any) -> list[str]:
    if isinstance(prompt, str):
        prompts = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        prompts = prompt
    elif isinstance(prompt, list) and prompt and all(isinstance(p, int) for p in prompt):
        raise not_supported("Token-id prompts are not supported by the local engine; send the prompt as text.", param="prompt")
    else:
        raise bad_request("'prompt' must be a non-empty string (or a list of strings).", param="prompt")
    if not any(p for p in prompts):
        raise bad_request("'prompt' is empty: write the beginning of the text to continue.", param="prompt")
    if len(prompts) > 16:
        raise bad_request("At most 16 prompts per request on the local engine.", param="prompt")
    return prompts


def _chat_prompt_tokens(llm: Any, messages: list[dict[str, str]]) -> list[int]:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    formatter = getattr(llm, "_playground_formatter", None)
    if formatter is None:
        template = llm.metadata.get("tokenizer.chat_template")
        eos = llm._model.token_get_text(llm.token_eos())
        bos = llm._model.token_get_text(llm.token_bos())
        formatter = Jinja2ChatFormatter(template, eos, bos)
        llm._playground_formatter = formatter
    rendered = formatter(messages=messages)
    return llm.tokenize(rendered.prompt.encode(), add_bos=not rendered.added_special, special=True)


def _completion_tokens(llm: Any, prompt: str) -> list[int]:
    # Special-token text in a completion prompt is just text, as with OpenAI's tokenizers.
    return llm.tokenize(prompt.encode(), add_bos=True, special=False)


def _check_window(model: str, prompt_tokens: int, request: dict[str, Any], max_tokens: int) -> int:
    """Prompt + output must fit the served window: a clear error with the counts, else the output budget."""
    window = catalog.context_length(model) or catalog.SERVED_CONTEXT
    key = "max_completion_tokens" if request.get("max_completion_tokens") is not None else "max_tokens"
    if max_tokens and max_tokens >= window:
        raise ProxyError(
            f"{key} is {max_tokens:,}, but {model} has a {window:,}-token context window (prompt and output together). "
            f"Lower {key} below {window - prompt_tokens:,}.",
            code="context_length_exceeded", status=400, param=key,
        )
    if prompt_tokens >= window:
        raise ProxyError(
            f"The prompt is {prompt_tokens:,} tokens, but {model} has a {window:,}-token context window. "
            f"Shorten it by at least {prompt_tokens - window + 1:,} tokens (and leave room for the answer).",
            code="context_length_exceeded", status=400, param="messages" if "messages" in request else "prompt",
        )
    if max_tokens and prompt_tokens + max_tokens > window:
        raise ProxyError(
            f"The prompt ({prompt_tokens:,} tokens) plus {key} ({max_tokens:,}) is {prompt_tokens + max_tokens:,} tokens, "
            f"over {model}'s {window:,}-token context window by {prompt_tokens + max_tokens - window:,}. "
            f"Lower {key} to {window - prompt_tokens:,} or less, or shorten the prompt.",
            code="context_length_exceeded", status=400, param=key,
        )
    return max_tokens or (window - prompt_tokens)


# -- structured output and tools ------------------------------------------------------------------

def _grammar(response_format: Any, tool_mode: dict[str, Any] | None) -> str | None:
    """GBNF for response_format / forced tool calls; llama.cpp then samples only valid JSON."""
    from llama_cpp.llama_grammar import JSON_GBNF

    from apps.engine.grammar import json_schema_to_gbnf

    if tool_mode is not None:
        if _present(response_format) and (response_format or {}).get("type") != "text":
            raise not_supported("response_format together with a forced tool call is not supported locally.", param="response_format")
        return _schema_gbnf(tool_mode["schema"], json_schema_to_gbnf, "tools")
    if not _present(response_format):
        return None
    if not isinstance(response_format, dict):
        raise bad_request("'response_format' must be an object such as {\"type\": \"json_object\"}.", param="response_format")
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return JSON_GBNF
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise bad_request(
                "response_format json_schema needs {\"json_schema\": {\"name\": ..., \"schema\": {...}}}.",
                param="response_format.json_schema",
            )
        return _schema_gbnf(spec["schema"], json_schema_to_gbnf, "response_format.json_schema.schema")
    raise bad_request(f"response_format type {kind!r} is unknown; use text, json_object or json_schema.", param="response_format.type")


def _schema_gbnf(schema: dict[str, Any], convert, param: str) -> str:
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(top level)"
        raise bad_request(f"The JSON schema is not valid JSON Schema at {where}: {exc.message}", param=param) from None
    try:
        return convert(schema)
    except Exception as exc:
        raise not_supported(
            f"The local engine cannot turn this JSON schema into a grammar ({type(exc).__name__}: {exc}). "
            "Simplify the schema or use an OpenAI provider.",
            param=param,
        ) from None


def _tool_mode(request: dict[str, Any]) -> dict[str, Any] | None:
    """Tools on SmolLM2 135M: only as a forced call, constrained to the tool's JSON schema.

    The model is too small to decide reliably *whether* to call a tool, so tool_choice
    "auto" is refused with a clear message; with "required" or a named function, the
    output is grammar-constrained to {"name": ..., "arguments": {...}} matching a declared
    tool, which makes the call always well-formed.
    """
    tools = request.get("tools")
    if not _present(tools):
        if _present(request.get("tool_choice")) and request.get("tool_choice") != "none":
            raise bad_request("'tool_choice' needs 'tools'.", param="tool_choice")
        return None
    if not isinstance(tools, list):
        raise bad_request("'tools' must be a list of {\"type\": \"function\", \"function\": {...}}.", param="tools")
    functions = []
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(function, dict) or not function.get("name"):
            raise bad_request(f"tools[{index}] must be {{\"type\": \"function\", \"function\": {{\"name\": ..., \"parameters\": {{...}}}}}}.", param=f"tools[{index}]")
        functions.append(function)
    choice = request.get("tool_choice") or "auto"
    if choice == "none":
        return None
    if choice == "auto":
        raise not_supported(
            "SmolLM2 135M cannot reliably decide on its own when to call a tool, so tool_choice \"auto\" is not "
            "supported locally. Set tool_choice to \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}} "
            "and the engine constrains the answer to a valid call; or use an OpenAI provider.",
            param="tool_choice",
        )
    if choice == "required":
        chosen = functions
    elif isinstance(choice, dict) and (choice.get("function") or {}).get("name"):
        name = choice["function"]["name"]
        chosen = [f for f in functions if f["name"] == name]
        if not chosen:
            raise bad_request(f"tool_choice names {name!r}, which is not in 'tools'.", param="tool_choice")
    else:
        raise bad_request("tool_choice must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}.", param="tool_choice")
    variants = [
        {
            "type": "object",
            "properties": {
                "name": {"const": f["name"]},
                "arguments": f.get("parameters") or {"type": "object", "properties": {}},
            },
            "required": ["name", "arguments"],
        }
        for f in chosen
    ]
    schema = variants[0] if len(variants) == 1 else {"oneOf": variants}
    return {"functions": chosen, "schema": schema}


def _with_tool_instructions(messages: list[dict[str, str]], tool_mode: dict[str, Any]) -> list[dict[str, str]]:
    listing = "\n".join(
        f"- {f['name']}: {f.get('description') or ''} parameters: {json.dumps(f.get('parameters') or {})}"
        for f in tool_mode["functions"]
    )
    note = f"You call a tool by answering with JSON {{\"name\": ..., \"arguments\": {{...}}}}. Tools:\n{listing}"
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": messages[0]["content"] + "\n\n" + note}, *messages[1:]]
    return [{"role": "system", "content": note}, *messages]


def _tool_call_deltas(text: str, ident: str, index: int) -> list[dict[str, Any]]:
    try:
        call = json.loads(text)
        name, arguments = call["name"], call["arguments"]
    except (ValueError, KeyError, TypeError):
        # Only when the output was cut short by max_tokens: pass on what was generated.
        return [{"content": text}]
    return [{
        "role": "assistant",
        "content": None,
        "tool_calls": [{
            "index": 0,
            "id": f"call_{ident[-12:]}{index}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)},
        }],
    }]
