"""The embeddings page against the test upstream: a real HTTP server, scripted per test."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from django.urls import reverse

from apps.embeddings.models import Embedding, EmbeddingStatus, TextSet
from apps.embeddings.tests.conftest import wait_finished
from apps.proxy.models import Run
from tests.upstream import Reply

TEN = ["The cat sat on the mat.", "A dog slept on the rug.", "Stock markets fell sharply today.",
       "The central bank raised interest rates.", "I love pasta with tomato sauce.", "Sushi is my favourite food.",
       "The football match ended in a draw.", "She won the tennis final.", "Rain is expected tomorrow.", "It will be sunny all week."]

pytestmark = pytest.mark.django_db(transaction=True)


def _embed(client, key, texts, **extra):
    return client.post(reverse("embeddings:index"), {"texts": "\n".join(texts), "model_key": key, **extra})


def test_page_lists_embedding_models(owner_client, only_upstream):
    response = owner_client.get(reverse("embeddings:index"))
    assert response.status_code == 200
    assert b"text-embedding-3-small" in response.content


def test_embed_ten_texts_shows_heatmap_plot_and_search_order(owner_client, only_upstream, embed_key, upstream):
    response = _embed(owner_client, embed_key, TEN)
    assert response.status_code == 302
    embedding = wait_finished(Embedding.objects.get().pk)
    assert embedding.status == EmbeddingStatus.SUCCEEDED, embedding.error
    assert embedding.done == 10 and embedding.dims == 8
    assert upstream.requests_to("/v1/embeddings")[0].json["input"] == TEN
    page = owner_client.get(response["Location"]).content.decode()
    assert 'id="heatmap"' in page and page.count('class="hm-cell"') == 100
    assert 'id="scatter"' in page and page.count('class="pt"') == 10
    # the run is recorded with tokens, and the page shows them
    run = Run.objects.get(group=f"embedding-{embedding.pk}")
    assert run.status == "succeeded" and run.capability == "embeddings" and run.prompt_tokens == sum(len(t.split()) for t in TEN)
    assert run.cost is not None  # text-embedding-3-small has a catalog price
    assert f"{run.prompt_tokens} tokens" in page
    # search: the test upstream's vectors are deterministic per text, so a query equal to a text ranks it first
    ranking = owner_client.get(reverse("embeddings:search", args=[embedding.pk]), {"q": TEN[3]}).content.decode()
    first = ranking.index(TEN[3])
    assert all(first < ranking.index(other) for other in TEN if other != TEN[3])
    assert "1.000" in ranking


def test_empty_text_list_is_refused(owner_client, only_upstream, embed_key):
    response = _embed(owner_client, embed_key, ["", "   "])
    assert response.status_code == 400
    assert "There are no texts to embed" in response.content.decode()
    assert not TextSet.objects.exists()


def test_text_over_the_token_limit_is_named_not_cut(owner_client, only_upstream, embed_key, upstream):
    long_text = "word " * 9000
    response = _embed(owner_client, embed_key, ["short one", long_text, "another"])
    body = response.content.decode()
    assert response.status_code == 400
    assert "Text 2" in body and "9,000 tokens" in body and "8,191" in body
    assert not upstream.requests_to("/v1/embeddings")
    assert not Embedding.objects.exists()


def test_five_thousand_texts_are_batched_with_progress(owner_client, only_upstream, embed_key, upstream, settings):
    settings.EMBEDDINGS_BATCH_MAX_INPUTS = 500
    texts = [f"text number {i}" for i in range(5000)]
    response = _embed(owner_client, embed_key, texts)
    assert response.status_code == 302
    embedding = wait_finished(Embedding.objects.get().pk, timeout=60)
    assert embedding.status == EmbeddingStatus.SUCCEEDED, embedding.error
    calls = upstream.requests_to("/v1/embeddings")
    assert len(calls) == 10 and all(len(c.json["input"]) == 500 for c in calls)
    assert embedding.done == 5000 and embedding.batches == 10
    run = Run.objects.get(group=f"embedding-{embedding.pk}")
    assert run.prompt_tokens == 5000 * 3  # the upstream's usage, summed over every batch
    assert len(run.input["input"]) == 101  # the Run keeps a sample; the set keeps every text
    vectors = np.load(io.BytesIO(owner_client.get(reverse("embeddings:download", args=[embedding.pk]), {"format": "npy"}).content))
    assert vectors.shape == (5000, 8)
    page = owner_client.get(reverse("embeddings:detail", args=[embedding.pk])).content.decode()
    assert "first 40 of 5000 texts" in page


def test_progress_is_shown_and_stop_keeps_partial_vectors(owner_client, only_upstream, embed_key, upstream, settings):
    settings.EMBEDDINGS_BATCH_MAX_INPUTS = 10
    # every batch takes 0.4 s: time to see progress and stop half way
    for _ in range(10):
        upstream.script("POST /v1/embeddings", Reply(first_delay=0.4, json={
            "data": [{"index": k, "embedding": [1.0, float(k), 0.5]} for k in range(10)], "usage": {"prompt_tokens": 20, "total_tokens": 20}}))
    _embed(owner_client, embed_key, [f"t{j}" for j in range(100)])
    embedding = Embedding.objects.get()
    import time

    deadline = time.monotonic() + 10
    while Embedding.objects.get().done < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    progress = owner_client.get(reverse("embeddings:progress", args=[embedding.pk]), headers={"HX-Request": "true"})
    assert "Embedding" in progress.content.decode() and "of 100 texts" in progress.content.decode()
    assert "HX-Refresh" not in progress
    owner_client.post(reverse("embeddings:cancel", args=[embedding.pk]))
    embedding = wait_finished(embedding.pk)
    assert embedding.status == EmbeddingStatus.CANCELLED
    assert 20 <= embedding.done < 100
    assert "vectors are kept" in embedding.error
    run = Run.objects.get(group=f"embedding-{embedding.pk}")
    assert run.status == "cancelled"
    assert len(upstream.requests_to("/v1/embeddings")) < 10
    done = owner_client.get(reverse("embeddings:progress", args=[embedding.pk]), headers={"HX-Request": "true"})
    assert done["HX-Refresh"] == "true"
    page = owner_client.get(reverse("embeddings:detail", args=[embedding.pk])).content.decode()
    assert page.count('class="pt"') == embedding.done


def test_upstream_without_embeddings_says_so(owner_client, only_upstream, embed_key, upstream):
    upstream.script("POST /v1/embeddings", Reply.error(404, "Unknown path /v1/embeddings", code="not_found"))
    _embed(owner_client, embed_key, TEN[:3])
    embedding = wait_finished(Embedding.objects.get().pk)
    assert embedding.status == EmbeddingStatus.FAILED
    assert "has no such endpoint" in embedding.error
    page = owner_client.get(reverse("embeddings:detail", args=[embedding.pk])).content.decode()
    assert "has no such endpoint" in page
    assert Run.objects.get(group=f"embedding-{embedding.pk}").status == "failed"


def test_upload_jsonl_with_labels_colours_the_plot(owner_client, only_upstream, embed_key):
    lines = [json.dumps({"text": t, "label": "animals" if i < 2 else "finance"}) for i, t in enumerate(TEN[:4])]
    upload = io.BytesIO("\n".join(lines).encode())
    upload.name = "pets.jsonl"
    response = owner_client.post(reverse("embeddings:index"), {"file": upload, "model_key": embed_key, "texts": ""})
    assert response.status_code == 302
    embedding = wait_finished(Embedding.objects.get().pk)
    assert embedding.text_set.labels == ["animals", "animals", "finance", "finance"]
    page = owner_client.get(response["Location"]).content.decode()
    assert 'class="legend"' in page and "animals" in page and "finance" in page


def test_downloads_and_a_path_in_the_name_is_refused(owner_client, only_upstream, embed_key):
    _embed(owner_client, embed_key, TEN[:3])
    embedding = wait_finished(Embedding.objects.get().pk)
    url = reverse("embeddings:download", args=[embedding.pk])
    csv_body = owner_client.get(url, {"format": "csv"})
    assert csv_body["Content-Disposition"] == f'attachment; filename="embedding-{embedding.pk}.csv"'
    lines = csv_body.content.decode().splitlines()
    assert lines[0].startswith("index,text,label,d0") and len(lines) == 4
    data = json.loads(owner_client.get(url, {"format": "json"}).content)
    assert data["data"][0]["text"] == TEN[0] and len(data["data"][0]["embedding"]) == 8
    named = owner_client.get(url, {"format": "json", "name": "my vectors"})
    assert named["Content-Disposition"] == 'attachment; filename="my vectors.json"'
    for bad in ("../../etc/passwd", "..\\secret", "/etc/passwd", "a/../../b"):
        refused = owner_client.get(url, {"format": "csv", "name": bad})
        assert refused.status_code == 400, bad
        assert "plain file name" in refused.content.decode()


def test_reembed_with_another_model_and_compare_rankings(owner_client, only_upstream, embed_key, upstream_provider):
    _embed(owner_client, embed_key, TEN)
    first = wait_finished(Embedding.objects.get().pk)
    response = owner_client.post(reverse("embeddings:set_embed", args=[first.text_set_id]), {"model_key": embed_key, "dimensions": "16"})
    assert response.status_code == 302
    second = wait_finished(Embedding.objects.exclude(pk=first.pk).get().pk)
    assert second.dims == 16 and second.text_set_id == first.text_set_id
    compare = owner_client.get(reverse("embeddings:set_compare", args=[first.text_set_id]), {"q": TEN[5]}).content.decode()
    assert compare.count('class="compare-col"') == 2
    assert compare.count(TEN[5]) == 2


def test_dimensions_refused_for_a_model_without_them(owner_client, only_upstream, upstream):
    upstream.models.append("text-embedding-ada-002")
    key = f"{only_upstream.pk}:text-embedding-ada-002"
    response = _embed(owner_client, key, TEN[:2], dimensions="64")
    assert response.status_code == 400
    assert "does not take a dimensions parameter" in response.content.decode()


def test_viewer_can_look_but_not_embed(viewer_client, only_upstream, embed_key):
    assert viewer_client.get(reverse("embeddings:index")).status_code == 200
    assert _embed(viewer_client, embed_key, TEN[:2]).status_code == 403
