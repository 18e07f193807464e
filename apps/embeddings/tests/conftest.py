from __future__ import annotations

import time

import pytest


@pytest.fixture
def embed_key(upstream_provider):
    return f"{upstream_provider.pk}:text-embedding-3-small"


def wait_finished(embedding_id: int, timeout: float = 20.0):
    from apps.embeddings.models import Embedding

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        embedding = Embedding.objects.get(pk=embedding_id)
        if not embedding.is_active:
            return embedding
        time.sleep(0.05)
    raise AssertionError(f"embedding {embedding_id} still {embedding.status} after {timeout} s ({embedding.done}/{embedding.total})")
