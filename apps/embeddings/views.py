"""Embeddings pages: thin views over services (writes) and selectors (reads)."""
from __future__ import annotations

import csv
import io
import json
import logging

import numpy as np
from asgiref.sync import async_to_sync
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.decorators import team_required
from apps.accounts.models import Role
from apps.embeddings import selectors, services
from apps.embeddings.downloads import UnsafeName, attachment, download_name, refused
from apps.embeddings.models import Embedding
from apps.embeddings.parsing import texts_from_lines, texts_from_upload
from apps.proxy.errors import ProxyError
from apps.proxy.selectors import model_choices, model_resolve, parse_model_key

logger = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 20 * 1024 * 1024


def _errors(exc: ValidationError) -> str:
    return " ".join(exc.messages)


def _picker(request, capability: str = "embeddings"):
    return async_to_sync(model_choices)(team=request.team, capability=capability)


def _resolve(request, key: str, *, dimensions_raw: str):
    """(provider, model id, dimensions) from the picker's value, or ValidationError."""
    try:
        provider_id, model = parse_model_key(key)
        provider, entry = async_to_sync(model_resolve)(team=request.team, model=model, provider_id=provider_id)
    except ProxyError as exc:
        raise ValidationError(exc.message) from None
    dimensions = None
    if dimensions_raw.strip():
        try:
            dimensions = int(dimensions_raw)
        except ValueError:
            raise ValidationError(f"Dimensions must be a whole number, not {dimensions_raw!r}.") from None
        if entry is not None and entry.known and not entry.supports("dimensions"):
            raise ValidationError(f"{model} does not take a dimensions parameter; leave it empty.")
    return provider, model, dimensions


@team_required(Role.VIEWER)
@require_http_methods(["GET", "POST"])
def index(request):
    form = {"texts": "", "name": "", "model_key": request.GET.get("model", ""), "dimensions": ""}
    error = ""
    status = 200
    if request.method == "POST":
        form = {k: request.POST.get(k, "") for k in form}
        try:
            upload = request.FILES.get("file")
            if upload is not None:
                if upload.size > MAX_UPLOAD_BYTES:
                    raise ValidationError(f"{upload.name} is {upload.size / 1e6:.1f} MB; upload at most {MAX_UPLOAD_BYTES // 1_000_000} MB of text.")
                parsed = texts_from_upload(upload.name, upload.read())
            else:
                parsed = texts_from_lines(form["texts"])
            provider, model, dimensions = _resolve(request, form["model_key"], dimensions_raw=form["dimensions"])
            text_set = services.textset_create(team=request.team, user=request.user, parsed=parsed, name=form["name"])
            try:
                embedding = services.embedding_start(team=request.team, user=request.user, text_set=text_set,
                                                     provider=provider, model=model, dimensions=dimensions)
            except ValidationError:
                text_set.delete()
                raise
            return redirect("embeddings:detail", embedding_id=embedding.pk)
        except ValidationError as exc:
            error, status = _errors(exc), 400
    context = {
        "form": form,
        "error": error,
        "index": _picker(request),
        "recent": selectors.embeddings_for_team(team=request.team)[:12],
        "sets": selectors.textsets_for_team(team=request.team)[:12],
    }
    return render(request, "embeddings/index.html", context, status=status)


def _results_context(embedding: Embedding) -> dict:
    text_set = embedding.text_set
    vectors = selectors.vectors_load(embedding=embedding)
    texts = text_set.texts[: len(vectors)]
    labels = text_set.labels[: len(vectors)] if text_set.labels else []
    return {
        "vectors_count": len(vectors),
        "preview": selectors.vectors_preview(vectors=vectors, texts=texts, labels=labels),
        "heatmap": selectors.heatmap(vectors=vectors, texts=texts) if len(vectors) else None,
        "scatter": selectors.scatter(vectors=vectors, texts=texts, labels=labels) if len(vectors) else None,
    }


@team_required(Role.VIEWER)
@require_GET
def detail(request, embedding_id: int):
    embedding = selectors.embedding_get(team=request.team, embedding_id=embedding_id)
    context = {"embedding": embedding, "text_set": embedding.text_set, "run": embedding.run,
               "index": _picker(request), "siblings": selectors.embeddings_of_set(text_set=embedding.text_set)}
    if not embedding.is_active:
        context.update(_results_context(embedding))
    return render(request, "embeddings/detail.html", context)


@team_required(Role.VIEWER)
@require_GET
def progress(request, embedding_id: int):
    embedding = selectors.embedding_get(team=request.team, embedding_id=embedding_id)
    response = render(request, "embeddings/detail.html#progress", {"embedding": embedding})
    if not embedding.is_active and request.htmx:
        response["HX-Refresh"] = "true"  # the results are a whole page: load it
    return response


@team_required(Role.EDITOR)
@require_POST
def cancel(request, embedding_id: int):
    embedding = selectors.embedding_get(team=request.team, embedding_id=embedding_id)
    embedding = services.embedding_cancel(embedding=embedding)
    if request.htmx:
        return render(request, "embeddings/detail.html#progress", {"embedding": embedding})
    return redirect("embeddings:detail", embedding_id=embedding.pk)


@team_required(Role.EDITOR)
@require_GET
def search(request, embedding_id: int):
    """Rank the texts against a query (the query is embedded with the same model: a Run)."""
    embedding = selectors.embedding_get(team=request.team, embedding_id=embedding_id)
    query = request.GET.get("q", "")
    context = {"embedding": embedding, "query": query}
    try:
        vector, run = services.query_embed(embedding=embedding, user=request.user, query=query)
        vectors = selectors.vectors_load(embedding=embedding)
        text_set = embedding.text_set
        context["ranking"] = selectors.rank(vectors=vectors, query=vector, texts=text_set.texts, labels=text_set.labels)
        context["run"] = run
    except ValidationError as exc:
        context["error"] = _errors(exc)
    except ProxyError as exc:
        context["error"] = exc.message
    return render(request, "embeddings/detail.html#ranking", context)


@team_required(Role.VIEWER)
@require_GET
def download(request, embedding_id: int):
    embedding = selectors.embedding_get(team=request.team, embedding_id=embedding_id)
    fmt = request.GET.get("format", "csv")
    if fmt not in ("csv", "json", "npy"):
        return HttpResponse("Choose format=csv, json or npy.", status=400, content_type="text/plain")
    try:
        name = download_name(request.GET.get("name"), default=f"embedding-{embedding.pk}", extension=fmt)
    except UnsafeName as exc:
        return refused(exc)
    vectors = selectors.vectors_load(embedding=embedding)
    text_set = embedding.text_set
    if fmt == "npy":
        buffer = io.BytesIO()
        np.save(buffer, vectors, allow_pickle=False)
        return attachment(buffer.getvalue(), name=name, content_type="application/octet-stream")
    if fmt == "json":
        rows = [{"index": i, "text": text_set.texts[i], **({"label": text_set.labels[i]} if text_set.labels else {}),
                 "embedding": [float(x) for x in vectors[i]]} for i in range(len(vectors))]
        body = json.dumps({"model": embedding.model, "dimensions": embedding.dims, "data": rows})
        return attachment(body.encode(), name=name, content_type="application/json")
    out = io.StringIO()
    writer = csv.writer(out)
    dims = vectors.shape[1] if len(vectors) else 0
    writer.writerow(["index", "text", "label", *[f"d{k}" for k in range(dims)]])
    for i in range(len(vectors)):
        writer.writerow([i, text_set.texts[i], text_set.labels[i] if text_set.labels else "", *[f"{x:.7g}" for x in vectors[i]]])
    return attachment(out.getvalue().encode(), name=name, content_type="text/csv; charset=utf-8")


@team_required(Role.VIEWER)
@require_GET
def set_detail(request, set_id: int):
    text_set = selectors.textset_get(team=request.team, set_id=set_id)
    return render(request, "embeddings/set.html", {
        "text_set": text_set, "embeddings": selectors.embeddings_of_set(text_set=text_set),
        "index": _picker(request), "rows": list(zip(text_set.texts[:200], text_set.labels[:200] or [""] * 200, strict=False)),
    })


@team_required(Role.EDITOR)
@require_POST
def set_embed(request, set_id: int):
    """Embed a saved set again, with another model, to compare."""
    text_set = selectors.textset_get(team=request.team, set_id=set_id)
    try:
        provider, model, dimensions = _resolve(request, request.POST.get("model_key", ""), dimensions_raw=request.POST.get("dimensions", ""))
        embedding = services.embedding_start(team=request.team, user=request.user, text_set=text_set,
                                             provider=provider, model=model, dimensions=dimensions)
    except ValidationError as exc:
        messages.error(request, _errors(exc))
        return redirect("embeddings:set_detail", set_id=text_set.pk)
    return redirect("embeddings:detail", embedding_id=embedding.pk)


@team_required(Role.EDITOR)
@require_GET
def set_compare(request, set_id: int):
    """The same query ranked by every finished embedding of the set, side by side."""
    text_set = selectors.textset_get(team=request.team, set_id=set_id)
    query = request.GET.get("q", "")
    columns, error = [], ""
    for embedding in selectors.embeddings_of_set(text_set=text_set):
        if embedding.is_active or not embedding.vectors:
            continue
        try:
            vector, run = services.query_embed(embedding=embedding, user=request.user, query=query)
        except ValidationError as exc:
            error = _errors(exc)
            break
        except ProxyError as exc:
            columns.append({"embedding": embedding, "error": exc.message})
            continue
        vectors = selectors.vectors_load(embedding=embedding)
        columns.append({"embedding": embedding, "run": run,
                        "ranking": selectors.rank(vectors=vectors, query=vector, texts=text_set.texts, labels=text_set.labels, limit=10)})
    if columns and not error:
        first = {r.index: n for n, r in enumerate(columns[0].get("ranking") or [])}
        for column in columns[1:]:
            for n, r in enumerate(column.get("ranking") or []):
                r.moved = (first[r.index] - n) if r.index in first else None
    return render(request, "embeddings/set.html#compare", {"text_set": text_set, "columns": columns, "error": error, "query": query})


@team_required(Role.EDITOR)
@require_POST
def set_delete(request, set_id: int):
    text_set = selectors.textset_get(team=request.team, set_id=set_id)
    services.textset_delete(text_set=text_set)
    messages.success(request, f"Deleted the text set “{text_set.name}” and its embeddings.")
    return redirect("embeddings:index")
