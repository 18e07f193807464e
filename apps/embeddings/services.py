"""Writes for embeddings: save a set of texts, embed it (batched, with progress, in the
background), cancel, and embed a search query.

Embedding thousands of texts takes longer than anyone should hold a request open, so a
job runs in a background thread with its own event loop; the page polls its progress
(htmx, every half second). The job is one Run (through apps.proxy.services.call_recorded)
covering every batch, so tokens and cost add up in one place.
"""
from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
from typing import Any

import numpy as np
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import close_old_connections, transaction
from django.utils import timezone

from apps.accounts.models import Team
from apps.embeddings.models import Embedding, EmbeddingStatus, TextSet
from apps.embeddings.parsing import ParsedTexts
from apps.proxy import tokens
from apps.proxy.errors import ProxyError
from apps.proxy.models import Capability, Provider, Run
from apps.proxy.providers import provider_for
from apps.proxy.services import call_recorded, context_length_for

logger = logging.getLogger(__name__)

# OpenAI takes at most 2,048 inputs and 300,000 tokens per embeddings request; smaller
# batches also mean finer progress and a quicker stop.
MAX_BATCH_INPUTS = 256
MAX_BATCH_TOKENS = 200_000
MAX_TEXTS = 20_000
STORED_INPUTS = 100  # how many texts a Run keeps in `input` (the set keeps them all)


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


# -- text sets ----------------------------------------------------------------------------------

@transaction.atomic
def textset_create(*, team: Team, user, parsed: ParsedTexts, name: str = "") -> TextSet:
    if not parsed.texts:
        raise ValidationError("There are no texts to embed: enter one text per line, or upload a .txt, .csv or .jsonl file.")
    limit = _setting("EMBEDDINGS_MAX_TEXTS", MAX_TEXTS)
    if len(parsed.texts) > limit:
        raise ValidationError(f"{len(parsed.texts):,} texts is more than the {limit:,} one set can hold; split the file.")
    name = name.strip() or _default_name(parsed.texts)
    return TextSet.objects.create(team=team, created_by=user, name=name[:200], texts=parsed.texts, labels=parsed.labels)


def _default_name(texts: list[str]) -> str:
    first = texts[0][:60] + ("…" if len(texts[0]) > 60 else "")
    return f"{first} (+{len(texts) - 1} more)" if len(texts) > 1 else first


def textset_delete(*, text_set: TextSet) -> None:
    for embedding in text_set.embeddings.all():
        if embedding.vectors:
            embedding.vectors.delete(save=False)
    text_set.delete()


# -- limits -------------------------------------------------------------------------------------

def token_counts(*, texts: list[str], model: str) -> list[int]:
    encoding = tokens.encoding_name_for_model(model)
    enc = tokens.get_encoding(encoding)
    return [len(ids) for ids in enc.encode_batch(texts, disallowed_special=())]


def texts_check_limit(*, team: Team, model: str, texts: list[str], counts: list[int]) -> None:
    """Refuse, naming the text, any input longer than the model takes: never cut silently."""
    limit = context_length_for(team=team, model=model)
    if not limit:
        return
    over = [(i, n) for i, n in enumerate(counts) if n > limit]
    if not over:
        return
    i, n = over[0]
    preview = texts[i][:50] + ("…" if len(texts[i]) > 50 else "")
    more = f" ({len(over) - 1} more texts are too long as well)" if len(over) > 1 else ""
    raise ValidationError(
        f"Text {i + 1} (\"{preview}\") is {n:,} tokens; {model} takes at most {limit:,} tokens per input. "
        f"Shorten or split it{more}."
    )


def batch_plan(counts: list[int], *, max_inputs: int, max_tokens: int) -> list[tuple[int, int]]:
    """[start, end) ranges that respect both the provider's input and token limits."""
    plan, start, used = [], 0, 0
    for i, n in enumerate(counts):
        if i > start and (i - start >= max_inputs or used + n > max_tokens):
            plan.append((start, i))
            start, used = i, 0
        used += n
    if start < len(counts):
        plan.append((start, len(counts)))
    return plan


# -- embedding jobs ----------------------------------------------------------------------------

def embedding_start(*, team: Team, user, text_set: TextSet, provider: Provider, model: str, dimensions: int | None = None) -> Embedding:
    """Check the texts fit the model, save the job and start it in the background."""
    counts = token_counts(texts=text_set.texts, model=model)
    texts_check_limit(team=team, model=model, texts=text_set.texts, counts=counts)
    if dimensions is not None and dimensions < 1:
        raise ValidationError("Dimensions must be a positive number (or empty for the model's default).")
    embedding = Embedding.objects.create(
        team=team, user=user, text_set=text_set, provider=provider, provider_name=provider.name,
        model=model, dimensions=dimensions, total=len(text_set.texts),
    )
    transaction.on_commit(lambda: embedding_spawn(embedding_id=embedding.pk))
    return embedding


# Jobs running in this process: id -> (loop, task), so Stop can cancel the request in flight.
_running: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Task]] = {}
_running_lock = threading.Lock()


def embedding_spawn(*, embedding_id: int) -> threading.Thread:
    thread = threading.Thread(target=_thread_main, args=(embedding_id,), name=f"embedding-{embedding_id}", daemon=True)
    thread.start()
    return thread


def _thread_main(embedding_id: int) -> None:
    try:
        asyncio.run(_run_registered(embedding_id))
    except Exception:
        logger.exception("embedding %s crashed", embedding_id)
    finally:
        close_old_connections()


async def _run_registered(embedding_id: int) -> None:
    task = asyncio.current_task()
    with _running_lock:
        _running[embedding_id] = (asyncio.get_running_loop(), task)
    try:
        await embedding_execute(embedding_id=embedding_id)
    finally:
        with _running_lock:
            _running.pop(embedding_id, None)


def embedding_cancel(*, embedding: Embedding) -> Embedding:
    """Stop: the batch in flight is cancelled here, or at the next batch elsewhere."""
    if not embedding.is_active:
        return embedding
    Embedding.objects.filter(pk=embedding.pk).update(cancel_requested=True)
    with _running_lock:
        found = _running.get(embedding.pk)
    if found:
        loop, task = found
        loop.call_soon_threadsafe(task.cancel)
    embedding.refresh_from_db()
    return embedding


def _load_job(embedding_id: int) -> tuple[Embedding, list[str]]:
    embedding = Embedding.objects.select_related("text_set", "provider", "team", "user").get(pk=embedding_id)
    Embedding.objects.filter(pk=embedding_id).update(status=EmbeddingStatus.RUNNING)
    return embedding, list(embedding.text_set.texts)


def _progress(embedding_id: int, done: int, batches: int) -> bool:
    Embedding.objects.filter(pk=embedding_id).update(done=done, batches=batches)
    return Embedding.objects.filter(pk=embedding_id, cancel_requested=True).exists()


def _stored_request(model: str, texts: list[str], dimensions: int | None, text_set: TextSet) -> dict[str, Any]:
    shown = texts[:STORED_INPUTS]
    if len(texts) > STORED_INPUTS:
        shown = [*shown, f"… and {len(texts) - STORED_INPUTS:,} more texts (text set #{text_set.pk} \"{text_set.name}\")"]
    request: dict[str, Any] = {"model": model, "input": shown, "texts": len(texts)}
    if dimensions:
        request["dimensions"] = dimensions
    return request


async def embedding_execute(*, embedding_id: int) -> Embedding:
    """Embed every text of the job's set in batches; record one Run; keep partial vectors."""
    embedding, texts = await database_sync_to_async(_load_job)(embedding_id)
    provider = embedding.provider
    if provider is None:
        return await database_sync_to_async(_finish)(embedding_id, EmbeddingStatus.FAILED, [], None,
                                                     "The provider of this embedding was removed.", 0)
    counts = await database_sync_to_async(token_counts)(texts=texts, model=embedding.model)
    plan = batch_plan(
        counts,
        max_inputs=_setting("EMBEDDINGS_BATCH_MAX_INPUTS", MAX_BATCH_INPUTS),
        max_tokens=_setting("EMBEDDINGS_BATCH_MAX_TOKENS", MAX_BATCH_TOKENS),
    )
    impl = provider_for(provider)
    vectors: list[list[float]] = []
    usage = {"prompt_tokens": 0, "total_tokens": 0, "reported": True}

    async def call() -> dict[str, Any]:
        for number, (start, end) in enumerate(plan, start=1):
            request: dict[str, Any] = {"model": embedding.model, "input": texts[start:end]}
            if embedding.dimensions:
                request["dimensions"] = embedding.dimensions
            reply = await impl.embeddings(request)
            batch = _vectors_from(reply, expected=end - start, provider=provider.name)
            vectors.extend(batch)
            reported = (reply.get("usage") or {}).get("prompt_tokens")
            if reported is None:
                usage["reported"] = False
                reported = sum(counts[start:end])
            usage["prompt_tokens"] += int(reported)
            usage["total_tokens"] += int((reply.get("usage") or {}).get("total_tokens") or reported)
            if await database_sync_to_async(_progress)(embedding_id, len(vectors), number) and number < len(plan):
                raise asyncio.CancelledError  # the Run is recorded as cancelled
        return {"count": len(vectors)}

    def summarize(result: dict[str, Any]) -> tuple[dict[str, Any], str, dict[str, Any] | None]:
        return _summary(vectors, plan), "", {"prompt_tokens": usage["prompt_tokens"], "total_tokens": usage["total_tokens"]}

    request = _stored_request(embedding.model, texts, embedding.dimensions, embedding.text_set)
    status, error = EmbeddingStatus.SUCCEEDED, ""
    try:
        await call_recorded(
            team=embedding.team, user=embedding.user, provider=provider, capability=Capability.EMBEDDINGS,
            model=embedding.model, request=request, call=call, summarize=summarize, group=f"embedding-{embedding_id}",
        )
    except ProxyError as exc:
        status, error = EmbeddingStatus.FAILED, exc.message
    except asyncio.CancelledError:
        status, error = EmbeddingStatus.CANCELLED, f"Stopped after {len(vectors):,} of {len(texts):,} texts; those vectors are kept."
    except Exception as exc:  # a bug must still leave a finished job behind
        logger.exception("embedding %s failed", embedding_id)
        status, error = EmbeddingStatus.FAILED, f"Playground failed: {type(exc).__name__}: {exc}"
    return await asyncio.shield(database_sync_to_async(_finish)(
        embedding_id, status, vectors, usage["prompt_tokens"] if vectors else None, error, len(plan)
    ))


def _vectors_from(reply: dict[str, Any], *, expected: int, provider: str) -> list[list[float]]:
    data = reply.get("data") if isinstance(reply, dict) else None
    if not isinstance(data, list) or len(data) != expected:
        got = len(data) if isinstance(data, list) else "no"
        raise ProxyError(f"{provider} returned {got} vectors for {expected} texts.", code="bad_response", status=502)
    ordered = sorted(data, key=lambda item: item.get("index", 0))
    vectors = [item.get("embedding") for item in ordered]
    if any(not isinstance(v, list) or not v for v in vectors):
        raise ProxyError(f"{provider} returned vectors in a form Playground cannot read (base64?).", code="bad_response", status=502)
    return vectors


def _summary(vectors: list[list[float]], plan: list[tuple[int, int]]) -> dict[str, Any]:
    return {
        "vectors": len(vectors),
        "dimensions": len(vectors[0]) if vectors else None,
        "batches": len(plan),
        "first": [[round(x, 6) for x in v[:8]] for v in vectors[:5]],
    }


def _finish(embedding_id: int, status: str, vectors: list[list[float]], prompt_tokens: int | None, error: str, batches: int) -> Embedding:
    embedding = Embedding.objects.get(pk=embedding_id)
    run = Run.objects.filter(team=embedding.team, group=f"embedding-{embedding_id}").order_by("-id").first()
    if vectors:
        array = np.asarray(vectors, dtype=np.float32)
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        embedding.vectors.save(f"embedding-{embedding_id}.npy", ContentFile(buffer.getvalue()), save=False)
        embedding.dims = int(array.shape[1])
    embedding.status = status
    embedding.done = len(vectors)
    embedding.error = error
    embedding.prompt_tokens = prompt_tokens
    if run is not None:
        embedding.run = run
        embedding.cost = run.cost
        embedding.total_ms = run.total_ms
        embedding.batches = batches if status == EmbeddingStatus.SUCCEEDED else embedding.batches
        if run.error and not error:
            embedding.error = run.error
    embedding.finished_at = timezone.now()
    embedding.save()
    return embedding


# -- queries -------------------------------------------------------------------------------------

def query_embed(*, embedding: Embedding, user, query: str) -> tuple[np.ndarray, Run]:
    """Embed a search query with the same model (and dimensions) as `embedding`: one Run."""
    query = query.strip()
    if not query:
        raise ValidationError("Type a query to rank the texts against.")
    if embedding.provider is None:
        raise ValidationError("The provider of this embedding was removed; embed the set again with another model.")
    counts = token_counts(texts=[query], model=embedding.model)
    texts_check_limit(team=embedding.team, model=embedding.model, texts=[query], counts=counts)
    request: dict[str, Any] = {"model": embedding.model, "input": [query]}
    if embedding.dimensions:
        request["dimensions"] = embedding.dimensions
    impl = provider_for(embedding.provider)

    def summarize(reply: dict[str, Any]):
        usage = reply.get("usage") or {"prompt_tokens": counts[0], "total_tokens": counts[0]}
        return {"purpose": f"search in embedding #{embedding.pk}"}, "", usage

    started = time.perf_counter()
    reply, run = async_to_sync(call_recorded)(
        team=embedding.team, user=user, provider=embedding.provider, capability=Capability.EMBEDDINGS,
        model=embedding.model, request=request, call=lambda: impl.embeddings(request), summarize=summarize,
    )
    logger.debug("query embedded in %.0f ms", (time.perf_counter() - started) * 1000)
    vector = _vectors_from(reply, expected=1, provider=embedding.provider_name)[0]
    run.refresh_from_db()
    return np.asarray(vector, dtype=np.float32), run
