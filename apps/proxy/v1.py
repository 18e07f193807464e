"""The team's OpenAI-compatible API at /v1, for scripts and SDKs.

Each view: authenticate the personal API token (`Authorization: Bearer pgk-...`), apply
the per-token rate limit, validate the request (clear 400s before any provider is
called), route the model id to one of the team's providers, and call the proxy service,
which records the Run (source "v1"). Every error is in OpenAI's JSON shape.

Streaming is the hot path (DESIGN.md, "Performance targets"): each chunk the provider
yields (parsed once upstream) is serialised once with orjson and handed to the server;
no per-chunk objects or DB writes; chunks that arrived together go out in one write (see
_sse). A client that disconnects makes Django cancel the response task, which closes the
RunStream, which closes the upstream request (or frees the engine's slot) and records the
Run as cancelled with the partial output (tested under uvicorn and under daphne).

What keeps the time to first chunk short: /v1 is served by a Django handler without the
pages' sync middleware (apps/proxy/v1_asgi.py); a checked token is trusted for
V1_AUTH_CACHE_SECONDS in this process (cleared at once on any token, membership, user,
team or provider change); the first chunk goes out on its own, at once, and the Run row
is written just after it, on a long-lived thread with its own connection
(apps/proxy/db_threads.py). `make bench` measures it (bench/).
"""
from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

import orjson
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.core.exceptions import RequestDataTooBig
from django.core.cache.backends.locmem import LocMemCache
from django.db.models.signals import post_delete, post_save
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from apps.accounts import ratelimit
from apps.accounts.models import ApiToken, Membership, Role, Team, hash_token
from apps.accounts.services import api_token_authenticate
from apps.proxy import selectors, services
from apps.proxy.errors import ProxyError, bad_request
from apps.proxy.models import Capability, Provider, ProviderKind, RunSource
from apps.proxy.providers import provider_for
from apps.proxy.providers.base import AudioResult, Upload
from apps.proxy.services import RunStream
from apps.proxy.writes import let_writes_out
from apps.proxy.db_threads import db

logger = logging.getLogger(__name__)

_dumps = orjson.dumps
DONE = b"data: [DONE]\n\n"
JSON = "application/json"
TOKENS_PAGE = "/accounts/tokens/"
CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
AUDIO_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/L16",
}


# -- responses -------------------------------------------------------------------------------

def json_response(data: Any, *, status: int = 200) -> HttpResponse:
    return HttpResponse(_dumps(data), content_type=JSON, status=status)


def error_response(error: ProxyError) -> HttpResponse:
    response = json_response(error.as_openai(), status=error.status)
    if error.retry_after is not None:
        response["Retry-After"] = str(max(1, int(error.retry_after + 0.999)))
    return response


# -- authentication and rate limit -------------------------------------------------------------

@dataclass(slots=True)
class Caller:
    """Who is calling /v1: the token's user, in the token's team, with their role, and
    (for calls that run a model) the team's enabled providers in routing order."""

    user: Any
    team: Team
    role: str
    token_id: int
    providers: list[Provider]


def _caller_load(raw: str) -> Caller:
    """Token, role and the team's providers (one trip to a database thread)."""
    token = api_token_authenticate(raw=raw)
    if token is None:
        raise ProxyError(
            f"Incorrect or revoked API key. Create a personal token at {TOKENS_PAGE} and send it as "
            "'Authorization: Bearer pgk-...'.",
            code="invalid_api_key", status=401,
        )
    role = Membership.objects.filter(team=token.team, user=token.user).values_list("role", flat=True).first()
    # The order model_index() uses: the local engine first, then by name.
    providers = sorted(
        selectors.providers_for_team(team=token.team, enabled_only=True),
        key=lambda p: (p.kind != ProviderKind.LOCAL, p.name.lower()),
    )
    return Caller(user=token.user, team=token.team, role=role or "", token_id=token.pk, providers=providers)


# Authenticated callers, by token hash, for V1_AUTH_CACHE_SECONDS: the token lookup, the
# membership and the provider rows are most of a request's fixed cost. Any save or delete
# of a token (revocation), membership, user, team or provider empties it at once in this
# process; other server processes see such a change within the TTL.
_callers: dict[str, tuple[float, Caller]] = {}


def _callers_forget(**kwargs: Any) -> None:
    _callers.clear()


for _model in (ApiToken, Membership, Provider, Team, get_user_model()):
    post_save.connect(_callers_forget, sender=_model, dispatch_uid=f"v1-callers-save-{_model.__name__}")
    post_delete.connect(_callers_forget, sender=_model, dispatch_uid=f"v1-callers-delete-{_model.__name__}")


async def _caller(raw: str, *, write: bool) -> Caller:
    key = hash_token(raw)
    ttl = settings.V1_AUTH_CACHE_SECONDS
    now = time.monotonic()
    cached = _callers.get(key)
    if cached is not None and now - cached[0] < ttl:
        caller = cached[1]
    else:
        caller = await db(_caller_load, raw)
        if ttl > 0:
            if len(_callers) > 10_000:  # bounded: many tokens in use just means more lookups
                _callers.clear()
            _callers[key] = (now, caller)
    if write and caller.role == Role.VIEWER:
        raise ProxyError(
            f"Your role in {caller.team.name} is viewer; running models through /v1 needs editor or owner.",
            code="permission_denied", status=403,
        )
    if settings.V1_RATE_LIMIT:
        if _local_cache():
            _rate_limit(caller.token_id)  # in-process memory: no I/O, no thread needed
        else:
            await db(_rate_limit, caller.token_id)
    return caller


def _local_cache() -> bool:
    return isinstance(caches["default"], LocMemCache)


def _rate_limit(token_id: int) -> None:
    """A fixed window per token in the Django cache (shared by all workers on Redis)."""
    window = settings.V1_RATE_LIMIT_WINDOW
    try:
        verdict = ratelimit.hit(f"v1:{token_id}", limit=settings.V1_RATE_LIMIT, window=window)
    except Exception as exc:  # noqa: BLE001 (the cache backend's own connection errors)
        # Fail open: Redis restarting must not take the whole API down with it.
        logger.warning("/v1 rate limit not applied: the cache is unavailable (%s)", exc)
        return
    if not verdict.allowed:
        raise ProxyError(
            f"Rate limit reached: {settings.V1_RATE_LIMIT} requests per {window:g} s for this API token. "
            f"Retry in {verdict.retry_after:.0f} s.",
            code="rate_limit_exceeded", status=429, retry_after=verdict.retry_after,
        )


def _too_large() -> ProxyError:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    size = f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"
    return ProxyError(
        f"The request body is larger than this server accepts ({size}). Send less input per request, "
        "or ask the administrator to raise DATA_UPLOAD_MAX_MEMORY_SIZE.",
        code="request_too_large", status=413,
    )


def _bearer(request: HttpRequest) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise ProxyError(
            "Missing API key. Send 'Authorization: Bearer <token>' with a personal token "
            f"created at {TOKENS_PAGE}.",
            code="missing_api_key", status=401,
        )
    return value.strip()


View = Callable[..., Awaitable[HttpResponse]]


def v1_view(*methods: str) -> Callable[[View], View]:
    """Method check, authentication, rate limit and OpenAI-shaped errors for a /v1 view."""

    allowed = frozenset(methods)

    def decorator(view: View) -> View:
        @wraps(view)
        async def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            try:
                if request.method not in allowed:
                    raise ProxyError(
                        f"{request.method} is not allowed on {request.path}; use {', '.join(sorted(allowed))}.",
                        code="method_not_allowed", status=405,
                    )
                raw = _bearer(request)
                caller = await _caller(raw, write=request.method != "GET")
                return await view(request, caller, *args, **kwargs)
            except ProxyError as exc:
                return error_response(exc)
            except RequestDataTooBig:
                return error_response(_too_large())
            except Exception as exc:
                logger.exception("/v1 %s failed", request.path)
                return error_response(
                    ProxyError(f"Playground failed: {type(exc).__name__}. The error is logged.", code="internal_error", status=500)
                )

        return csrf_exempt(wrapped)

    return decorator


# -- request validation -------------------------------------------------------------------------

def _json_body(request: HttpRequest) -> dict[str, Any]:
    if not request.body:
        raise bad_request("The request body is empty; send a JSON object.")
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"The request body is not valid JSON ({exc}).") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None or model == "":
        raise bad_request("'model' is required. GET /v1/models lists the models you can use.", param="model")
    if not isinstance(model, str):
        raise bad_request("'model' must be a string.", param="model")
    return model


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# name -> (check, what it must be)
_PARAM_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "stream": (lambda v: isinstance(v, bool), "true or false"),
    "temperature": (lambda v: _is_number(v) and 0 <= v <= 2, "a number from 0 to 2"),
    "top_p": (lambda v: _is_number(v) and 0 <= v <= 1, "a number from 0 to 1"),
    "max_tokens": (lambda v: _is_int(v) and v >= 1, "a whole number of at least 1"),
    "max_completion_tokens": (lambda v: _is_int(v) and v >= 1, "a whole number of at least 1"),
    "n": (lambda v: _is_int(v) and 1 <= v <= 128, "a whole number from 1 to 128"),
    "seed": (_is_int, "a whole number"),
    "presence_penalty": (lambda v: _is_number(v) and -2 <= v <= 2, "a number from -2 to 2"),
    "frequency_penalty": (lambda v: _is_number(v) and -2 <= v <= 2, "a number from -2 to 2"),
    "logprobs": (lambda v: isinstance(v, bool) or (_is_int(v) and 0 <= v <= 20), "true/false (chat) or 0-20 (completions)"),
    "top_logprobs": (lambda v: _is_int(v) and 0 <= v <= 20, "a whole number from 0 to 20"),
    "stop": (lambda v: isinstance(v, str) or (isinstance(v, list) and len(v) <= 4 and all(isinstance(s, str) for s in v)),
             "a string or a list of up to 4 strings"),
    "stream_options": (lambda v: isinstance(v, dict), "an object"),
    "response_format": (lambda v: isinstance(v, dict) and isinstance(v.get("type"), str), 'an object like {"type": "json_object"}'),
    "tools": (lambda v: isinstance(v, list), "a list"),
    "user": (lambda v: isinstance(v, str), "a string"),
}


def _check_params(body: dict[str, Any]) -> None:
    for name, (check, expected) in _PARAM_RULES.items():
        if name in body and body[name] is not None and not check(body[name]):
            raise bad_request(f"'{name}' must be {expected}; got {orjson.dumps(body[name]).decode()[:80]}.", param=name)


def _check_messages(messages: Any) -> None:
    if messages is None:
        raise bad_request("'messages' is required: a list of {\"role\", \"content\"} objects.", param="messages")
    if not isinstance(messages, list):
        raise bad_request("'messages' must be a list of {\"role\", \"content\"} objects.", param="messages")
    if not messages:
        raise bad_request("'messages' is empty; send at least one message.", param="messages")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad_request(f"{where} must be an object with 'role' and 'content'.", param=where)
        role = message.get("role")
        if role not in CHAT_ROLES:
            raise bad_request(
                f"{where} has an unknown role {role!r}; use one of {', '.join(sorted(CHAT_ROLES))}.", param=f"{where}.role"
            )
        content = message.get("content")
        if content is None:
            if role == "assistant" and (message.get("tool_calls") or message.get("function_call")):
                continue
            raise bad_request(f"{where} ({role}) has no 'content'.", param=f"{where}.content")
        if not isinstance(content, (str, list)):
            raise bad_request(f"{where}.content must be a string or a list of content parts.", param=f"{where}.content")
        if isinstance(content, list) and not all(isinstance(p, dict) and isinstance(p.get("type"), str) for p in content):
            raise bad_request(f"{where}.content parts must be objects with a 'type'.", param=f"{where}.content")


def _check_prompt(prompt: Any) -> None:
    if prompt is None:
        raise bad_request("'prompt' is required.", param="prompt")
    if isinstance(prompt, str):
        return
    if isinstance(prompt, list) and prompt and (all(isinstance(p, str) for p in prompt) or all(_is_int(p) for p in prompt)):
        return
    raise bad_request("'prompt' must be a string or a non-empty list of strings.", param="prompt")


async def _resolve(caller: Caller, model: str) -> tuple[Provider, str]:
    """The provider serving `model` and the model id it knows it by.

    The same routing as selectors.model_resolve() (first provider listing the id; "Provider
    name/model" picks one), from the providers loaded with the token and the per-process
    model-list cache, so a request makes no extra trips to the database.
    """

    async def listed(provider: Provider) -> list[dict[str, Any]] | ProxyError:
        try:
            return await services.provider_models(provider=provider)
        except ProxyError as exc:
            return exc

    # Fresh lists straight from the cache; only the rest are fetched (together). On the hot
    # path every list is cached, and gathering would start a task per provider for nothing.
    lists: list[Any] = [services.provider_models_cached(provider=p) for p in caller.providers]
    missing = [i for i, found in enumerate(lists) if found is None]
    if missing:
        fetched = await asyncio.gather(*(listed(caller.providers[i]) for i in missing))
        for i, models in zip(missing, fetched):
            lists[i] = models
    for provider, models in zip(caller.providers, lists):
        if not isinstance(models, ProxyError) and any(m.get("id") == model for m in models):
            return provider, model
    name, slash, bare = model.partition("/")
    if slash:
        for provider, models in zip(caller.providers, lists):
            if provider.name == name and not isinstance(models, ProxyError) and any(m.get("id") == bare for m in models):
                return provider, bare
    failing = [p.name for p, m in zip(caller.providers, lists) if isinstance(m, ProxyError)]
    unreachable = f" (not reachable: {', '.join(failing)})" if failing else ""
    raise ProxyError(
        f"The model '{model}' does not exist in any provider of your team{unreachable}. "
        "GET /v1/models lists the models you can use.",
        code="model_not_found", status=404, param="model",
    )


# -- models -------------------------------------------------------------------------------------

def _model_objects(index: selectors.ModelIndex) -> list[dict[str, Any]]:
    seen: set[str] = set()
    data = []
    for entry in index.models:
        # The same id at two providers: the second is addressed as "Provider name/model".
        model_id = entry.id if entry.id not in seen else f"{entry.provider_name}/{entry.id}"
        seen.add(entry.id)
        data.append({"id": model_id, "object": "model", "created": 0, "owned_by": entry.provider_name})
    return data


@v1_view("GET")
async def models(request: HttpRequest, caller: Caller) -> HttpResponse:
    index = await selectors.model_index(team=caller.team)
    return json_response({"object": "list", "data": _model_objects(index)})


@v1_view("GET")
async def model_detail(request: HttpRequest, caller: Caller, model: str) -> HttpResponse:
    index = await selectors.model_index(team=caller.team)
    for item in _model_objects(index):
        if item["id"] == model:
            return json_response(item)
    raise ProxyError(f"The model '{model}' does not exist in any provider of your team.", code="model_not_found",
                     status=404, param="model")


# -- chat and completions -----------------------------------------------------------------------

class _Resume:
    """Await the rest of an async-generator step that was started by hand and had to wait.

    `yield from` for a step begun with `send(None)`: the futures it waits on go to the
    task, and whatever the task throws in (cancellation) goes to the step.
    """

    __slots__ = ("step", "waiting")

    def __init__(self, step: Any, waiting: Any) -> None:
        self.step = step
        self.waiting = waiting

    def __await__(self):
        step, value = self.step, self.waiting
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                step.close()
                raise
            except BaseException as exc:
                try:
                    value = step.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    value = step.send(sent)
                except StopIteration as done:
                    return done.value


async def _abandon(step: Any, waiting: Any) -> None:
    """The response was closed while a step was waiting: cancel it as the task would have."""
    try:
        waiting = step.throw(asyncio.CancelledError())
        await _Resume(step, waiting)
    except BaseException:  # the step ends by raising: that is the point
        pass


MAX_BATCH = 256


async def _sse(stream: RunStream, first: Any, usage_wanted: bool) -> AsyncIterator[bytes]:
    """Pass the provider's chunks on as SSE as they come: the hot path, kept lean.

    Each chunk is serialised once. The first goes out on its own at once (time to first
    token). After it, chunks that are already here when the previous one is handled (they
    arrived in the same read from upstream) go out in one write, and everything goes out
    as soon as the next chunk has to be waited for, so nothing is held back: the client
    gets each chunk as early as one-at-a-time would, with a fraction of the per-write work
    in Django and the server.
    """
    dumps = _dumps
    parts: list[bytes] = []
    append = parts.append
    if type(first) is dict and (usage_wanted or first.get("choices") or not first.get("usage")):
        try:
            yield b"data: " + dumps(first) + b"\n\n"
            await let_writes_out()
        except BaseException:
            await stream.aclose()
            raise
    stream.begin()  # the Run row, now that the first chunk is on its way (see _text_call)
    events = aiter(stream)
    try:
        async with stream:
            while True:
                step = events.__anext__()
                try:
                    waiting = step.send(None)
                except StopIteration as ready:
                    event = ready.value
                except StopAsyncIteration:
                    break
                else:
                    if parts:  # nothing more is here yet: send what is
                        try:
                            yield b"".join(parts)
                        except BaseException:
                            await _abandon(step, waiting)
                            raise
                        parts.clear()
                    try:
                        event = await _Resume(step, waiting)
                    except StopAsyncIteration:
                        break
                if type(event) is not dict:
                    continue  # QueuePosition: pages show it; the OpenAI stream has no place for it
                if not usage_wanted and "usage" in event and not event.get("choices"):
                    continue  # the usage-only chunk the client did not ask for
                append(b"data: " + dumps(event) + b"\n\n")
                if len(parts) >= MAX_BATCH:
                    yield b"".join(parts)
                    parts.clear()
    except ProxyError as exc:
        # Mid-stream failure: OpenAI's SDKs raise on an event carrying "error".
        append(b"data: " + dumps(exc.as_openai()) + b"\n\n")
    append(DONE)
    yield b"".join(parts)


async def _text_call(request: HttpRequest, caller: Caller, *, kind: str) -> HttpResponse:
    body = _json_body(request)
    model = _model(body)
    if kind == "chat":
        _check_messages(body.get("messages"))
    else:
        _check_prompt(body.get("prompt"))
    _check_params(body)
    streaming = bool(body.pop("stream", False))
    usage_wanted = bool((body.pop("stream_options", None) or {}).get("include_usage"))
    provider, model_id = await _resolve(caller, model)
    body["model"] = model_id
    stream = RunStream(
        write=functools.partial(
            db, services.run_start, team=caller.team, user=caller.user, provider=provider, model=model_id,
            request=body, source=RunSource.API, capability=Capability.CHAT if kind == "chat" else Capability.COMPLETION,
        ),
        provider=provider, request=body, kind=kind,
    )
    events = aiter(stream)
    if not streaming:
        async with stream:
            async for _ in events:
                pass
        return json_response(stream.result())
    # Wait for the first event before answering, so that a request the provider refuses
    # outright gets a real HTTP error status instead of an error inside a 200 stream.
    # The Run row is written once the first chunk has gone out (_sse): the insert's ORM
    # work, on a database thread, holds the GIL against this request (measured: +1.3 ms to
    # the first chunk when it overlapped the wait for it). Checkpoints and the finish wait
    # for the row, so it always exists before anything updates it.
    try:
        try:
            first = await anext(events)
        except StopAsyncIteration:
            first = None
    except BaseException:
        await stream.aclose()
        raise
    response = StreamingHttpResponse(_sse(stream, first, usage_wanted), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


@v1_view("POST")
async def chat_completions(request: HttpRequest, caller: Caller) -> HttpResponse:
    return await _text_call(request, caller, kind="chat")


@v1_view("POST")
async def completions(request: HttpRequest, caller: Caller) -> HttpResponse:
    return await _text_call(request, caller, kind="completion")


# -- one-shot calls ------------------------------------------------------------------------------

async def _recorded(caller: Caller, params: dict[str, Any], *, capability: str,
                    call: Callable[[Any], Awaitable[Any]], summarize: Callable[[Any], tuple[dict, str, dict | None]],
                    upload: Upload | None = None) -> Any:
    """Resolve params["model"] to a provider, call it, and record the call as a Run.

    `call` gets the provider implementation; an uploaded file is stored in the Run as its
    name and size only (the bytes are the provider's business, not the runs history's).
    """
    provider, model_id = await _resolve(caller, _model(params))
    params["model"] = model_id
    impl = provider_for(provider)
    stored = {**params, "input": f"{upload.filename} ({len(upload.content):,} bytes)"} if upload else params
    result, _ = await services.call_recorded(
        team=caller.team, user=caller.user, provider=provider, capability=capability, model=model_id,
        request=stored, call=lambda: call(impl), summarize=summarize, source=RunSource.API,
    )
    return result


def _embeddings_summary(result: dict[str, Any]) -> tuple[dict, str, dict | None]:
    data = result.get("data") or []
    first = data[0].get("embedding") if data and isinstance(data[0], dict) else None
    dims = len(first) if isinstance(first, list) else None
    return {"count": len(data), "dimensions": dims}, "", result.get("usage")


@v1_view("POST")
async def embeddings(request: HttpRequest, caller: Caller) -> HttpResponse:
    body = _json_body(request)
    _model(body)
    value = body.get("input")
    if value is None or value == "" or value == []:
        raise bad_request("'input' is required: a string or a non-empty list of strings.", param="input")
    if not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, (str, int, list)) for v in value))):
        raise bad_request("'input' must be a string or a list of strings.", param="input")
    if isinstance(value, list) and any(v == "" for v in value):
        raise bad_request("'input' contains an empty string; every input needs some text.", param="input")
    if "dimensions" in body and body["dimensions"] is not None and not (_is_int(body["dimensions"]) and body["dimensions"] >= 1):
        raise bad_request("'dimensions' must be a whole number of at least 1.", param="dimensions")
    if body.get("encoding_format") not in (None, "float", "base64"):
        raise bad_request("'encoding_format' must be 'float' or 'base64'.", param="encoding_format")
    result = await _recorded(caller, body, capability=Capability.EMBEDDINGS,
                             call=lambda impl: impl.embeddings(body), summarize=_embeddings_summary)
    return json_response(result)


@v1_view("POST")
async def audio_speech(request: HttpRequest, caller: Caller) -> HttpResponse:
    body = _json_body(request)
    _model(body)
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise bad_request("'input' is required: the text to speak (it is empty).", param="input")
    fmt = body.get("response_format", "mp3")
    if fmt not in AUDIO_TYPES:
        raise bad_request(f"'response_format' must be one of {', '.join(AUDIO_TYPES)}.", param="response_format")
    speed = body.get("speed")
    if speed is not None and not (_is_number(speed) and 0.25 <= speed <= 4):
        raise bad_request("'speed' must be a number from 0.25 to 4.", param="speed")
    if "voice" in body and not isinstance(body["voice"], str):
        raise bad_request("'voice' must be a string.", param="voice")
    def summary(result: AudioResult) -> tuple[dict, str, dict | None]:
        return {"format": result.format, "bytes": len(result.audio), "duration_s": result.duration_s}, text, None

    result: AudioResult = await _recorded(caller, body, capability=Capability.SPEECH,
                                          call=lambda impl: impl.speech(body), summarize=summary)
    content_type = result.content_type or AUDIO_TYPES.get(result.format, "application/octet-stream")
    return HttpResponse(result.audio, content_type=content_type)


def _upload(request: HttpRequest, field: str, *, required: bool = True) -> Upload | None:
    file = request.FILES.get(field)
    if file is None:
        if required:
            raise bad_request(f"'{field}' is required: send it as a multipart/form-data file.", param=field)
        return None
    content = file.read()
    if not content:
        raise bad_request(f"The uploaded '{field}' is empty.", param=field)
    return Upload(filename=file.name or field, content=content, content_type=file.content_type or "application/octet-stream")


def _form(request: HttpRequest) -> dict[str, Any]:
    if not request.content_type.startswith("multipart/form-data"):
        raise bad_request("Send this request as multipart/form-data (a file upload).")
    params: dict[str, Any] = {}
    for key in request.POST:
        values = request.POST.getlist(key)
        name = key[:-2] if key.endswith("[]") else key
        params[name] = values if key.endswith("[]") or len(values) > 1 else values[0]
    return params


def _number_field(params: dict[str, Any], name: str, *, lo: float, hi: float, whole: bool = False) -> None:
    if name not in params or params[name] in ("", None):
        return
    try:
        value = int(params[name]) if whole else float(params[name])
    except (TypeError, ValueError):
        raise bad_request(f"'{name}' must be a {'whole ' if whole else ''}number.", param=name) from None
    if not lo <= value <= hi:
        raise bad_request(f"'{name}' must be from {lo:g} to {hi:g}.", param=name)
    params[name] = value


async def _transcribe(request: HttpRequest, caller: Caller, *, translate: bool) -> HttpResponse:
    params = _form(request)
    upload = _upload(request, "file")
    _model(params)
    fmt = params.get("response_format", "json")
    if fmt not in ("json", "text", "srt", "verbose_json", "vtt"):
        raise bad_request("'response_format' must be json, text, srt, verbose_json or vtt.", param="response_format")
    _number_field(params, "temperature", lo=0, hi=1)
    def summary(result: dict[str, Any] | str) -> tuple[dict, str, dict | None]:
        text = result if isinstance(result, str) else str(result.get("text", ""))
        return {"format": fmt}, text, None

    result = await _recorded(
        caller, params, capability=Capability.TRANSLATION if translate else Capability.TRANSCRIPTION, upload=upload,
        call=lambda impl: impl.transcription(upload, params, translate=translate), summarize=summary,
    )
    if isinstance(result, str):
        return HttpResponse(result, content_type="text/plain; charset=utf-8")
    return json_response(result)


@v1_view("POST")
async def audio_transcriptions(request: HttpRequest, caller: Caller) -> HttpResponse:
    return await _transcribe(request, caller, translate=False)


@v1_view("POST")
async def audio_translations(request: HttpRequest, caller: Caller) -> HttpResponse:
    return await _transcribe(request, caller, translate=True)


def _images_summary(result: dict[str, Any]) -> tuple[dict, str, dict | None]:
    data = result.get("data") or []
    revised = [d.get("revised_prompt") for d in data if isinstance(d, dict) and d.get("revised_prompt")]
    urls = [d["url"] for d in data if isinstance(d, dict) and d.get("url")]
    return {"count": len(data), "urls": urls, "revised_prompts": revised}, "", result.get("usage")


def _image_params(params: dict[str, Any]) -> None:
    if "n" in params and params["n"] not in (None, ""):
        if isinstance(params["n"], str):
            _number_field(params, "n", lo=1, hi=10, whole=True)
        elif not (_is_int(params["n"]) and 1 <= params["n"] <= 10):
            raise bad_request("'n' must be a whole number from 1 to 10.", param="n")
    if params.get("response_format") not in (None, "", "url", "b64_json"):
        raise bad_request("'response_format' must be 'url' or 'b64_json'.", param="response_format")


@v1_view("POST")
async def images_generations(request: HttpRequest, caller: Caller) -> HttpResponse:
    body = _json_body(request)
    _model(body)
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise bad_request("'prompt' is required: describe the image.", param="prompt")
    _image_params(body)
    result = await _recorded(caller, body, capability=Capability.IMAGE,
                             call=lambda impl: impl.image_generate(body), summarize=_images_summary)
    return json_response(result)


@v1_view("POST")
async def images_edits(request: HttpRequest, caller: Caller) -> HttpResponse:
    params = _form(request)
    image = _upload(request, "image")
    mask = _upload(request, "mask", required=False)
    _model(params)
    if not str(params.get("prompt") or "").strip():
        raise bad_request("'prompt' is required: describe the edit.", param="prompt")
    _image_params(params)
    result = await _recorded(caller, params, capability=Capability.IMAGE, upload=image,
                             call=lambda impl: impl.image_edit(image, mask, params), summarize=_images_summary)
    return json_response(result)


@v1_view("POST")
async def images_variations(request: HttpRequest, caller: Caller) -> HttpResponse:
    params = _form(request)
    image = _upload(request, "image")
    _model(params)
    _image_params(params)
    result = await _recorded(caller, params, capability=Capability.IMAGE, upload=image,
                             call=lambda impl: impl.image_variation(image, params), summarize=_images_summary)
    return json_response(result)


@csrf_exempt
async def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    return error_response(ProxyError(
        f"There is no /v1 endpoint {request.path}. Playground serves models, chat/completions, completions, "
        "embeddings, audio/speech, audio/transcriptions, audio/translations and images/*.",
        code="unknown_url", status=404,
    ))
