from __future__ import annotations

import numpy as np

from apps.embeddings import selectors
from apps.embeddings.services import batch_plan


def test_batch_plan_respects_input_and_token_limits():
    assert batch_plan([1] * 10, max_inputs=4, max_tokens=100) == [(0, 4), (4, 8), (8, 10)]
    assert batch_plan([60, 60, 10, 100], max_inputs=10, max_tokens=100) == [(0, 1), (1, 3), (3, 4)]
    assert batch_plan([], max_inputs=4, max_tokens=100) == []


def test_rank_orders_by_cosine_similarity():
    vectors = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    ranked = selectors.rank(vectors=vectors, query=np.array([1, 0.1]), texts=["x", "y", "xy"], labels=[])
    assert [r.text for r in ranked] == ["x", "xy", "y"]
    assert abs(ranked[0].score - 0.995) < 0.01


def test_pca_separates_two_clusters_on_the_first_axis():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.05, (10, 16)) + 1
    b = rng.normal(0, 0.05, (10, 16)) - 1
    coords, explained = selectors.pca_2d(np.vstack([a, b]))
    assert coords.shape == (20, 2)
    assert explained[0] > 0.9
    assert np.all(np.sign(coords[:10, 0]) == -np.sign(coords[10:, 0]))


def test_pca_of_one_point_does_not_fail():
    coords, explained = selectors.pca_2d(np.ones((1, 4)))
    assert coords.shape == (1, 2)


def test_heatmap_is_capped_and_diagonal_is_one():
    vectors = np.random.default_rng(1).normal(size=(50, 8))
    heatmap = selectors.heatmap(vectors=vectors, texts=[f"t{i}" for i in range(50)])
    assert heatmap.size == selectors.HEATMAP_MAX and heatmap.total == 50
    diagonal = [c["value"] for c in heatmap.cells if c["i"] == c["j"]]
    assert all(abs(v - 1) < 1e-5 for v in diagonal)


def test_scatter_colours_by_label():
    vectors = np.random.default_rng(2).normal(size=(6, 8))
    scatter = selectors.scatter(vectors=vectors, texts=list("abcdef"), labels=["x", "x", "y", "y", "z", "z"])
    assert [entry["label"] for entry in scatter.legend] == ["x", "y", "z"]
    assert len({p["fill"] for p in scatter.points}) == 3
