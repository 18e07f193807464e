"""Reads for embeddings, team-scoped, and the numbers the page draws.

The analysis is plain numpy: cosine similarity of L2-normalised vectors, ranking by
similarity to a query, and a 2-D PCA from the SVD of the centred vectors. The page draws
the results as server-rendered SVG, so nothing but numbers and shapes reach the browser.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.db.models import QuerySet

from apps.accounts.models import Team
from apps.accounts.selectors import team_get_object_or_404
from apps.embeddings.models import Embedding, EmbeddingStatus, TextSet

HEATMAP_MAX = 40
SCATTER_MAX = 2000
PALETTE = ["#10a37f", "#6b40d8", "#f4ac36", "#ef4146", "#27b5ea", "#d946ef", "#84cc16", "#f97316", "#0ea5e9", "#64748b"]


def textsets_for_team(*, team: Team) -> QuerySet[TextSet]:
    return TextSet.objects.filter(team=team)


def textset_get(*, team: Team, set_id: int | str) -> TextSet:
    return team_get_object_or_404(TextSet, team=team, pk=set_id)


def embeddings_for_team(*, team: Team) -> QuerySet[Embedding]:
    return Embedding.objects.filter(team=team).select_related("text_set", "run")


def embedding_get(*, team: Team, embedding_id: int | str) -> Embedding:
    return team_get_object_or_404(embeddings_for_team(team=team), team=team, pk=embedding_id)


def embeddings_of_set(*, text_set: TextSet) -> QuerySet[Embedding]:
    return Embedding.objects.filter(text_set=text_set).select_related("run")


def vectors_load(*, embedding: Embedding) -> np.ndarray:
    """The vectors received (all of them, or those before a stop or failure)."""
    if not embedding.vectors:
        return np.zeros((0, 0), dtype=np.float32)
    with embedding.vectors.open("rb") as handle:
        return np.load(handle, allow_pickle=False)


def normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def similarity_matrix(vectors: np.ndarray) -> np.ndarray:
    unit = normalise(vectors)
    return unit @ unit.T


@dataclass
class Ranked:
    index: int
    text: str
    label: str
    score: float


def rank(*, vectors: np.ndarray, query: np.ndarray, texts: list[str], labels: list[str], limit: int = 20) -> list[Ranked]:
    if not len(vectors):
        return []
    scores = normalise(vectors) @ (query / (np.linalg.norm(query) or 1.0))
    order = np.argsort(-scores, kind="stable")[:limit]
    return [Ranked(int(i), texts[i], labels[i] if labels else "", float(scores[i])) for i in order]


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Points projected on the first two principal components, and the variance they explain."""
    n = len(vectors)
    if n == 0:
        return np.zeros((0, 2)), [0.0, 0.0]
    centred = vectors.astype(np.float64) - vectors.mean(axis=0)
    if n == 1 or not np.any(centred):
        return np.zeros((n, 2)), [0.0, 0.0]
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:2]
    coords = centred @ components.T
    if coords.shape[1] == 1:
        coords = np.hstack([coords, np.zeros((n, 1))])
    variance = s ** 2
    explained = [float(v / variance.sum()) for v in variance[:2]] + [0.0] * (2 - min(2, len(variance)))
    return coords, explained


# -- what the templates draw -------------------------------------------------------------------

def _colour(value: float) -> str:
    """Cosine similarity -1..1 as a colour: blue (opposite) - white - green (same)."""
    v = max(-1.0, min(1.0, value))
    if v >= 0:
        r, g, b = int(255 - 239 * v), int(255 - 92 * v), int(255 - 128 * v)
    else:
        r, g, b = int(255 + 216 * v), int(255 + 100 * v), 255
    return f"#{r:02x}{g:02x}{b:02x}"


@dataclass
class Heatmap:
    size: int
    total: int
    cell: int
    label_width: int
    cells: list[dict]
    rows: list[dict]

    @property
    def width(self) -> int:
        return self.label_width + self.size * self.cell

    @property
    def height(self) -> int:
        return self.label_width + self.size * self.cell


def heatmap(*, vectors: np.ndarray, texts: list[str], limit: int = HEATMAP_MAX) -> Heatmap:
    size = min(len(vectors), limit)
    sims = similarity_matrix(vectors[:size]) if size else np.zeros((0, 0))
    cell = 28 if size <= 12 else 18 if size <= 24 else 13
    label_width = 150
    cells = []
    for i in range(size):
        for j in range(size):
            value = float(sims[i, j])
            cells.append({
                "x": label_width + j * cell, "y": label_width + i * cell, "fill": _colour(value), "value": value,
                "title": f"{i + 1} · {j + 1}: {value:.3f}", "dark": value > 0.7, "i": i, "j": j,
            })
    rows = [{"index": i, "short": _short(texts[i], 22), "text": texts[i],
             "y": label_width + i * cell + cell / 2, "x": label_width + i * cell + cell / 2} for i in range(size)]
    return Heatmap(size=size, total=len(vectors), cell=cell, label_width=label_width, cells=cells, rows=rows)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass
class Scatter:
    points: list[dict]
    legend: list[dict]
    explained: list[float]
    shown: int
    total: int
    width: int = 640
    height: int = 420


def scatter(*, vectors: np.ndarray, texts: list[str], labels: list[str], limit: int = SCATTER_MAX) -> Scatter:
    total = len(vectors)
    keep = np.arange(total)
    if total > limit:
        keep = np.linspace(0, total - 1, limit).astype(int)
    coords, explained = pca_2d(vectors[keep]) if total else (np.zeros((0, 2)), [0.0, 0.0])
    width, height, pad = 640, 420, 28
    if len(coords):
        lo, hi = coords.min(axis=0), coords.max(axis=0)
        span = np.where(hi - lo == 0, 1.0, hi - lo)
        scaled = (coords - lo) / span
    else:
        scaled = coords
    distinct = sorted({labels[i] for i in keep if labels and labels[i]}) if labels else []
    colours = {label: PALETTE[n % len(PALETTE)] for n, label in enumerate(distinct)}
    show_text = len(keep) <= 60
    points = []
    for n, i in enumerate(keep):
        x = pad + float(scaled[n, 0]) * (width - 2 * pad)
        y = height - pad - float(scaled[n, 1]) * (height - 2 * pad)
        label = labels[i] if labels else ""
        points.append({
            "x": round(x, 1), "y": round(y, 1), "index": int(i), "text": texts[i], "short": _short(texts[i], 24) if show_text else "",
            "label": label, "fill": colours.get(label, PALETTE[0]),
            # labels of points near the right edge go to their left, so they stay inside the plot
            "anchor": "end" if x > width * 0.68 else "start", "tx": round(x - 9 if x > width * 0.68 else x + 9, 1),
        })
    legend = [{"label": label, "fill": colour} for label, colour in colours.items()]
    return Scatter(points=points, legend=legend, explained=[round(100 * e, 1) for e in explained], shown=len(keep), total=total)


def vectors_preview(*, vectors: np.ndarray, texts: list[str], labels: list[str], rows: int = 20, values: int = 6) -> list[dict]:
    out = []
    for i in range(min(rows, len(vectors))):
        out.append({"index": i, "text": texts[i], "label": labels[i] if labels else "",
                    "values": [f"{v:+.4f}" for v in vectors[i][:values]], "norm": float(np.linalg.norm(vectors[i]))})
    return out


def is_finished(embedding: Embedding) -> bool:
    return embedding.status not in (EmbeddingStatus.QUEUED, EmbeddingStatus.RUNNING)
