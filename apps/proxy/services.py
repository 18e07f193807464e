"""The API-proxy service every capability shares.

Pages, consumers and /v1 call these functions; they choose the provider, count tokens,
record the Run (once at start, once at end: never per token), and turn every failure into
a ProxyError. Nothing here renders HTML.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from django.core.exceptions import ValidationError
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from apps.accounts.models import Team
from apps.proxy import catalog, tokens
from apps.proxy.db_threads import db
from apps.proxy.errors import ProxyError
from apps.proxy.models import Capability, ModelPrice, Provider, ProviderKind, Run, RunSource, RunStatus
from apps.proxy.providers import provider_for
from apps.proxy.providers.base import StreamEvent
from apps.proxy.stream import StreamAccumulator

logger = logging.getLogger(__name__)
T = TypeVar("T")

WORKER = f"{socket.gethostname()}:{os.getpid()}"
LOCAL_PROVIDER_NAME = "Local engine"
MAX_STORED_DATA_URL = 2048


# -- providers ------------------------------------------------------------------------------

@transaction.atomic
def provider_ensure_local(*, team: Team) -> Provider:
    """Every team has the embedded engine without configuring anything."""
    found = Provider.objects.filter(team=team, kind=ProviderKind.LOCAL).first()
    if found:
        return found
    return Provider.objects.create(team=team, name=LOCAL_PROVIDER_NAME, kind=ProviderKind.LOCAL)


@transaction.atomic
def provider_from_environment(*, team: Team) -> Provider | None:
    """OPENAI_API_KEY in the environment adds an OpenAI provider to the first team."""
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    if not key or Provider.objects.filter(team=team, name="OpenAI").exists():
        return None
    provider = Provider(
        team=team,
        name="OpenAI",
        kind=ProviderKind.OPENAI_COMPATIBLE,
        base_url=os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"),
    )
    provider.set_api_key(key)
    provider.save()
    logger.info("added the OpenAI provider from OPENAI_API_KEY to team %s", team.slug)
    return provider


@transaction.atomic
def provider_save(
    *,
    team: Team,
    user,
    provider: Provider | None = None,
    name: str,
    base_url: str,
    api_key: str = "",
    clear_key: bool = False,
    auth_style: str = "bearer",
    extra_headers: dict[str, str] | None = None,
    query_params: dict[str, str] | None = None,
    organization: str = "",
    project: str = "",
    enabled: bool = True,
) -> Provider:
    """Create or update an OpenAI-compatible provider. A blank key keeps the stored one."""
    if provider is None:
        provider = Provider(team=team, kind=ProviderKind.OPENAI_COMPATIBLE, created_by=user)
    elif provider.is_local:
        raise ValidationError("The local engine has no settings to edit.")
    provider.name = name.strip()
    provider.base_url = base_url.strip().rstrip("/")
    provider.auth_style = auth_style
    provider.extra_headers = {str(k): str(v) for k, v in (extra_headers or {}).items()}
    provider.query_params = {str(k): str(v) for k, v in (query_params or {}).items()}
    provider.organization = organization.strip()
    provider.project = project.strip()
    provider.enabled = enabled
    if api_key.strip():
        provider.set_api_key(api_key)
    elif clear_key:
        provider.set_api_key("")
    if Provider.objects.filter(team=team, name=provider.name).exclude(pk=provider.pk).exists():
        raise ValidationError({"name": f"This team already has a provider called {provider.name}."})
    provider.full_clean()
    provider.save()
    models_cache_clear(provider)
    return provider


def provider_delete(*, provider: Provider) -> None:
    if provider.is_local:
        raise ValidationError("The local engine is part of every team and cannot be removed.")
    models_cache_clear(provider)
    provider.delete()


async def provider_test(*, provider: Provider) -> list[dict[str, Any]]:
    """List the provider's models, or raise a ProxyError saying exactly what failed."""
    models = await provider_for(provider).list_models()
    _models_cache[provider.pk] = (time.monotonic(), models)
    return models


# -- model index ----------------------------------------------------------------------------

_models_cache: dict[int, tuple[float, list[dict[str, Any]]]] = {}


def models_cache_clear(provider: Provider) -> None:
    _models_cache.pop(provider.pk, None)


def provider_models_cached(*, provider: Provider) -> list[dict[str, Any]] | None:
    """The cached model list while it is fresh, else None (no I/O: for the hot path)."""
    cached = _models_cache.get(provider.pk)
    if cached and time.monotonic() - cached[0] < settings.MODEL_LIST_CACHE_SECONDS:
        return cached[1]
    return None


async def provider_models(*, provider: Provider, refresh: bool = False) -> list[dict[str, Any]]:
    """The provider's own model list, cached for MODEL_LIST_CACHE_SECONDS per process."""
    cached = None if refresh else provider_models_cached(provider=provider)
    if cached is not None:
        return cached
    models = await provider_for(provider).list_models()
    _models_cache[provider.pk] = (time.monotonic(), models)
    return models


def price_for(*, team: Team, model: str) -> tuple[Decimal | None, Decimal | None]:
    """($ per 1M input tokens, $ per 1M output tokens): the team's table, else the catalog."""
    prices = list(ModelPrice.objects.filter(team=team).values_list("model", "input_per_million", "output_per_million"))
    return price_from(prices, model)


def price_from(prices: list[tuple[str, Decimal, Decimal]], model: str) -> tuple[Decimal | None, Decimal | None]:
    exact = [p for p in prices if p[0] == model]
    if exact:
        return exact[0][1], exact[0][2]
    prefixes = sorted((p for p in prices if p[0].endswith("*") and model.startswith(p[0][:-1])), key=lambda p: -len(p[0]))
    if prefixes:
        return prefixes[0][1], prefixes[0][2]
    meta = catalog.lookup(model)
    if meta is None:
        return None, None
    return meta.input_price, meta.output_price


def cost_of(*, input_price: Decimal | None, output_price: Decimal | None, prompt_tokens: int | None, completion_tokens: int | None) -> Decimal | None:
    if input_price is None and output_price is None:
        return None
    cost = Decimal(0)
    if prompt_tokens and input_price is not None:
        cost += input_price * prompt_tokens / Decimal(1_000_000)
    if completion_tokens and output_price is not None:
        cost += output_price * completion_tokens / Decimal(1_000_000)
    return cost.quantize(Decimal("0.000001"))


@transaction.atomic
def price_set(*, team: Team, model: str, input_per_million: Decimal, output_per_million: Decimal, context_length: int | None = None) -> ModelPrice:
    price = ModelPrice.objects.filter(team=team, model=model.strip()).first() or ModelPrice(team=team, model=model.strip())
    price.input_per_million = input_per_million
    price.output_per_million = output_per_million
    price.context_length = context_length
    price.full_clean()  # refuses negative numbers with a message naming the field
    price.save()
    return price


# -- runs -------------------------------------------------------------------------------------

def _storable(value: Any) -> Any:
    """The request as stored on a Run: big inline images are replaced by a note of their size."""
    if isinstance(value, str):
        if value.startswith("data:") and len(value) > MAX_STORED_DATA_URL:
            return f"{value[:value.find(',') + 1]}... ({len(value):,} characters not stored)"
        return value
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items()}
    return value


INPUT_KEYS = ("messages", "prompt", "input", "suffix")


def run_start(
    *,
    team: Team,
    user,
    capability: str,
    provider: Provider | None,
    model: str,
    request: dict[str, Any],
    source: str = RunSource.PAGE,
    prompt_version_id: int | None = None,
    group: str = "",
) -> Run:
    params = {k: v for k, v in request.items() if k not in INPUT_KEYS and k not in ("model", "stream")}
    data_in = {k: request[k] for k in INPUT_KEYS if k in request}
    return Run.objects.create(
        team=team,
        user=user if getattr(user, "is_authenticated", False) else None,
        capability=capability,
        source=source,
        provider=provider,
        provider_name=provider.name if provider else "",
        model=model,
        params=_storable(params),
        input=_storable(data_in),
        prompt_version_id=prompt_version_id,
        group=group,
        worker=WORKER,
    )


def run_finish(
    run: Run,
    *,
    status: str,
    output: dict[str, Any] | None = None,
    output_text: str = "",
    error: ProxyError | None = None,
    usage: dict[str, Any] | None = None,
    usage_counted: bool = False,
    ttft_ms: float | None = None,
    total_ms: float | None = None,
) -> Run:
    run.status = status
    run.output = output or {}
    run.output_text = output_text
    if error is not None:
        run.error = error.message
        run.error_code = error.code
    if usage:
        run.prompt_tokens = usage.get("prompt_tokens")
        run.completion_tokens = usage.get("completion_tokens")
        run.total_tokens = usage.get("total_tokens") or ((run.prompt_tokens or 0) + (run.completion_tokens or 0))
        run.usage_counted = usage_counted
        input_price, output_price = price_for(team=run.team, model=run.model)
        run.cost = cost_of(
            input_price=input_price,
            output_price=output_price,
            prompt_tokens=run.prompt_tokens,
            completion_tokens=run.completion_tokens,
        )
    if run.cost is None and run.capability == Capability.IMAGE and (output or {}).get("count"):
        # dall-e models are priced per image (by size and quality; OpenAI defaults to 1024x1024).
        price = catalog.image_price(run.model, size=str(run.params.get("size") or "1024x1024"), quality=run.params.get("quality"))
        if price is not None:
            run.cost = (price * Decimal(output["count"])).quantize(Decimal("0.000001"))
    if run.cost is None and _runs_locally(run):
        run.cost = Decimal(0)  # the local engine runs on this machine: free, not unknown
    run.ttft_ms = ttft_ms
    run.total_ms = total_ms
    run.finished_at = timezone.now()
    # Only the fields a finish writes: the provider may have been removed while the run
    # streamed (its runs' provider became NULL), and saving the stale FK would fail.
    updated = Run.objects.filter(pk=run.pk).update(**{name: getattr(run, name) for name in FINISH_FIELDS})
    if not updated:
        # Its conversation, prompt or team was deleted while it streamed: nothing to keep.
        logger.info("run %s was deleted while it streamed; its result is dropped", run.pk)
    return run


def _runs_locally(run: Run) -> bool:
    try:
        return bool(run.provider_id) and run.provider.kind == ProviderKind.LOCAL
    except Provider.DoesNotExist:  # removed while the run streamed
        return False


FINISH_FIELDS = [
    "status", "output", "output_text", "error", "error_code", "prompt_tokens", "completion_tokens",
    "total_tokens", "usage_counted", "cost", "ttft_ms", "total_ms", "finished_at",
]


async def run_finish_saved(run: Run, **fields: Any) -> Run:
    """run_finish, retried while the database is locked or unreachable for a moment.

    A run's result must not be lost because SQLite was locked past its busy timeout or a
    PostgreSQL connection dropped just as the answer ended. If the database stays away
    for RUN_SAVE_RETRY_SECONDS, the caller gets an error that says the answer was not saved.
    """
    deadline = time.monotonic() + settings.RUN_SAVE_RETRY_SECONDS
    delay = 0.05
    while True:
        try:
            return await db(run_finish, run, **fields)
        except (OperationalError, InterfaceError) as exc:
            if time.monotonic() + delay > deadline:
                logger.error("run %s: the result could not be saved (%s); gave up", run.pk, exc)
                raise ProxyError(
                    f"The answer was received but could not be saved: the database is unavailable ({exc}). "
                    "Check the server's database; this run stays marked as running.",
                    code="database_unavailable", status=503,
                ) from exc
            logger.warning("run %s: saving the result failed (%s); retrying", run.pk, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


def run_progress_save(*, run_id: int, output: dict[str, Any], output_text: str) -> None:
    """Checkpoint a streaming run's output so far, so a killed process loses little.

    Only while the run is still running: a late checkpoint never overwrites a finish.
    """
    Run.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(output=output, output_text=output_text)


def runs_mark_interrupted() -> int:
    """Runs left 'running' by a process of this host that is gone become 'interrupted'.

    Called at server start. Runs of live processes (another worker on this host) and of
    other hosts are left alone; their partial output is kept as it was saved.
    """
    dead = [run_id for run_id, worker in Run.objects.filter(status=RunStatus.RUNNING).values_list("id", "worker")
            if worker_gone(worker)]
    if dead:
        Run.objects.filter(id__in=dead).update(
            status=RunStatus.INTERRUPTED,
            error="The server stopped while this run was in progress; the output received until then is kept.",
            error_code="interrupted",
            finished_at=timezone.now(),
        )
        logger.warning("marked %d runs interrupted (their server process had stopped)", len(dead))
    return len(dead)


def worker_gone(worker: str, *, alive: Callable[[int], bool] | None = None) -> bool:
    """Whether the server process named by a row's `worker` ("host:pid") has stopped.

    Runs, evaluations and local fine-tuning jobs record the process serving them; at
    start-up the ones whose process is gone are marked. Another host's process cannot be
    checked from here (not gone); a row with no worker was left by one that is.
    """
    host, _, pid = worker.rpartition(":")
    if host and host != socket.gethostname():
        return False
    if not pid.isdigit():
        return True
    return int(pid) != os.getpid() and not (alive or _alive)(int(pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _count_usage(request: dict[str, Any], acc: StreamAccumulator, model: str, kind: str) -> dict[str, int]:
    """Usage when the provider did not report it: counted with the model family's encoding."""
    if kind == "chat":
        prompt = tokens.count_messages(request.get("messages") or [], model=model)
    else:
        prompt_value = request.get("prompt") or ""
        prompt = tokens.count_text(prompt_value if isinstance(prompt_value, str) else " ".join(map(str, prompt_value)), model=model)
    completion = 0
    for index in acc.choices:
        completion += tokens.count_text(acc.text(index), model=model)
        for call in acc.tool_calls(index):
            completion += tokens.count_text(call["function"]["name"] + call["function"]["arguments"], model=model)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class RunStream:
    """A streaming model call recorded as a Run.

    Iterate it to get the provider's events; read `acc` for the answer so far. However the
    iteration ends (done, ProxyError, the task cancelled, or the consumer leaving an
    `async with` block early), the Run is written once with the output received so far
    and the right status:

        async with await services.stream_start(...) as stream:
            async for event in stream:
                ...

    The Run row is either written before (`run`), or written while the provider call is
    under way (`write`: returns an awaitable of the row, started by `begin()`), so that the
    database trip overlaps the provider's time to first token instead of preceding it.
    The row always exists before a checkpoint or the finish updates it: they wait for it.
    """

    def __init__(self, *, provider: Provider, request: dict[str, Any], kind: str, run: Run | None = None,
                 write: Callable[[], Awaitable[Run]] | None = None) -> None:
        if (run is None) == (write is None):
            raise ValueError("RunStream needs either the Run row or how to write it")
        self.run = run
        self._write = write
        self._writing: asyncio.Future | None = None
        self.provider = provider
        self.request = request
        self.kind = kind
        self.acc = StreamAccumulator(kind=kind)
        self.started = time.perf_counter()
        self.error: ProxyError | None = None
        self.status: str = RunStatus.RUNNING
        self._events: AsyncIterator[StreamEvent] | None = None
        self._checkpoint: asyncio.Task | None = None

    async def __aenter__(self) -> RunStream:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        if self._events is None:
            self._events = self._iterate()
        return self._events

    async def aclose(self) -> None:
        """Stop: close the upstream request and record the run as cancelled if unfinished."""
        if self._events is not None:
            await self._events.aclose()
        elif self.status == RunStatus.RUNNING:
            await asyncio.shield(self._finish(RunStatus.CANCELLED, None))

    @property
    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    @property
    def ttft_ms(self) -> float | None:
        if self.acc.first_token_at is None:
            return None
        return (self.acc.first_token_at - self.started) * 1000

    async def _iterate(self) -> AsyncIterator[StreamEvent]:
        impl = provider_for(self.provider)
        source = impl.chat(self.request) if self.kind == "chat" else impl.completion(self.request)
        status, error = RunStatus.FAILED, None
        try:
            async for event in source:
                if isinstance(event, dict):
                    self.acc.feed(event)
                    if self._checkpoint is None:
                        self._checkpoint = asyncio.create_task(self._save_progress())
                yield event
            if self.acc.choices and not self.acc.finished:
                error = ProxyError(
                    f"{self.provider.name} ended the stream before the answer was complete; the text received is kept.",
                    code="stream_interrupted", status=502,
                )
                raise error
            status = RunStatus.SUCCEEDED
        except ProxyError as exc:
            error = exc
            raise
        except (asyncio.CancelledError, GeneratorExit):
            status = RunStatus.CANCELLED
            raise
        except Exception as exc:
            logger.exception("run %s failed", getattr(self.run, "pk", "(not yet written)"))
            from apps.proxy.redaction import redact

            detail = redact(str(exc), [self.provider.get_api_key()]) if not self.provider.is_local else str(exc)
            error = ProxyError(f"Playground failed while streaming: {type(exc).__name__}: {detail}", code="internal_error", status=500)
            raise error from exc
        finally:
            await _aclose(source)
            # Shielded: a cancelled consumer must still leave a finished Run behind.
            await asyncio.shield(self._finish(status, error))

    def begin(self) -> None:
        """Start writing the Run row, when it was not written before (idempotent)."""
        if self._writing is None and self._write is not None:
            self._writing = asyncio.ensure_future(self._write())

    async def written(self) -> None:
        """Wait for the Run row (a failure to write it is raised here)."""
        if self.run is None:
            self.begin()  # shielded: a cancelled checkpoint must not cancel the write
            self.run = await asyncio.shield(self._writing)

    async def _save_progress(self) -> None:
        """Write the output so far once per RUN_CHECKPOINT_SECONDS while chunks arrive
        (never per token), so a process killed mid-stream leaves its partial output."""
        try:
            await asyncio.sleep(settings.RUN_CHECKPOINT_SECONDS)
            await self.written()
            # Not thread-sensitive: this task was created inside the view's sync context,
            # whose executor may be gone by now (a /v1 stream outlives its view).
            await database_sync_to_async(run_progress_save, thread_sensitive=False)(
                run_id=self.run.pk, output=self.acc.output(), output_text=self.acc.text(0)
            )
        except asyncio.CancelledError:
            raise
        except Exception:  # a missed checkpoint must never break the stream
            logger.warning("run %s: checkpoint failed", self.run.pk, exc_info=True)
        finally:
            self._checkpoint = None

    async def _finish(self, status: str, error: ProxyError | None) -> None:
        if self._checkpoint is not None:
            self._checkpoint.cancel()
            self._checkpoint = None
        self.error = error
        try:
            await self.written()
            usage, counted = self.acc.usage, False
            if not usage and self.acc.choices:
                usage, counted = _count_usage(self.request, self.acc, self.run.model, self.kind), True
            await run_finish_saved(
                self.run,
                status=status,
                output=self.acc.output(),
                output_text=self.acc.text(0),
                error=error,
                usage=usage,
                usage_counted=counted,
                ttft_ms=self.ttft_ms,
                total_ms=self.elapsed_ms,
            )
        finally:
            # Set last: whoever waits for `status` to leave "running" (a stopped turn) then
            # reads a Run that is written.
            self.status = status

    def result(self) -> dict[str, Any]:
        """The non-streamed OpenAI reply equivalent to what was received."""
        usage = None
        if self.run.prompt_tokens is not None:
            usage = {
                "prompt_tokens": self.run.prompt_tokens,
                "completion_tokens": self.run.completion_tokens or 0,
                "total_tokens": self.run.total_tokens or 0,
            }
        if self.kind == "chat":
            return self.acc.chat_result(model=self.run.model, usage=usage)
        return self.acc.completion_result(model=self.run.model, usage=usage)


async def _aclose(gen: Any) -> None:
    close = getattr(gen, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # closing a broken upstream must not hide the real outcome
            logger.debug("closing the provider stream failed", exc_info=True)


async def stream_start(
    *,
    team: Team,
    user,
    provider: Provider,
    request: dict[str, Any],
    kind: str = "chat",
    source: str = RunSource.PAGE,
    prompt_version_id: int | None = None,
    group: str = "",
) -> RunStream:
    """Start a chat or completion call: the Run row exists when this returns."""
    capability = Capability.CHAT if kind == "chat" else Capability.COMPLETION
    run = await db(
        run_start,
        team=team,
        user=user,
        capability=capability,
        provider=provider,
        model=request.get("model", ""),
        request=request,
        source=source,
        prompt_version_id=prompt_version_id,
        group=group,
    )
    return RunStream(run=run, provider=provider, request=request, kind=kind)


async def call_recorded(
    *,
    team: Team,
    user,
    provider: Provider,
    capability: str,
    model: str,
    request: dict[str, Any],
    call: Callable[[], Awaitable[T]],
    summarize: Callable[[T], tuple[dict[str, Any], str, dict[str, Any] | None]],
    source: str = RunSource.PAGE,
    group: str = "",
) -> tuple[T, Run]:
    """A non-streaming call (embeddings, images, audio) recorded as a Run.

    `summarize(result)` returns (output to store, output text, usage or None).
    """
    run = await database_sync_to_async(run_start)(
        team=team, user=user, capability=capability, provider=provider, model=model,
        request=request, source=source, group=group,
    )
    started = time.perf_counter()
    status, error = RunStatus.FAILED, None
    output: dict[str, Any] = {}
    text, usage = "", None
    try:
        result = await call()
        output, text, usage = summarize(result)
        status = RunStatus.SUCCEEDED
        return result, run
    except ProxyError as exc:
        error = exc
        raise
    except asyncio.CancelledError:
        status = RunStatus.CANCELLED
        raise
    finally:
        total = (time.perf_counter() - started) * 1000
        await asyncio.shield(
            run_finish_saved(run, status=status, output=output, output_text=text, error=error, usage=usage, total_ms=total)
        )


# -- tokens and the context window ------------------------------------------------------------

def context_length_for(*, team: Team, model: str) -> int | None:
    """The model's context window: the team's table, the catalog, or the local engine's own."""
    row = ModelPrice.objects.filter(team=team, model=model, context_length__isnull=False).first()
    if row:
        return row.context_length
    meta = catalog.lookup(model)
    if meta and meta.context_length:
        return meta.context_length
    try:
        from apps.engine.catalog import context_length as local_context_length
    except ImportError:
        return None
    return local_context_length(model)


def context_check(*, prompt_tokens: int, max_tokens: int | None, context_length: int | None) -> dict[str, Any]:
    """Prompt plus output must fit the model's context window: say so before sending."""
    needed = prompt_tokens + (max_tokens or 0)
    result: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "max_tokens": max_tokens,
        "context_length": context_length,
        "total": needed,
        "fits": None,
        "percent": None,
    }
    if not context_length:
        result["message"] = f"{prompt_tokens:,} prompt tokens" + (f" + {max_tokens:,} max output" if max_tokens else "")
        return result
    result["fits"] = needed <= context_length
    result["percent"] = min(100, round(100 * needed / context_length, 1))
    output = f" + {max_tokens:,} max output" if max_tokens else ""
    if result["fits"]:
        result["message"] = f"{prompt_tokens:,} prompt{output} = {needed:,} of {context_length:,} tokens"
    else:
        result["message"] = (
            f"{prompt_tokens:,} prompt{output} = {needed:,} tokens: over the model's {context_length:,}-token "
            f"context window by {needed - context_length:,}. Shorten the prompt or lower max tokens."
        )
    return result
