"""The embeddings page in chromium against the local engine's real e5 model."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.proxy.models import Provider, Run

pytestmark = pytest.mark.django_db(transaction=True)

TEXTS = [
    "The cat sat on the mat.",
    "A kitten slept on the rug.",
    "Dogs love to chase balls in the park.",
    "My puppy fetched the stick.",
    "Stock markets fell sharply today.",
    "Investors sold shares as prices dropped.",
    "The recipe needs two cups of flour.",
    "Bake the bread for forty minutes.",
    "The football match ended in a draw.",
    "The striker scored a late goal.",
]


def test_embed_ten_texts_heat_map_plot_and_search(page, login, owner, team, shot):
    local = Provider.objects.get(team=team, kind="local")
    login(page, owner)
    page.goto("/embeddings/")
    page.fill("#texts", "\n".join(TEXTS))
    page.fill("#name", "Ten sentences")
    page.select_option("[data-model-picker]", f"{local.pk}:multilingual-e5-small")
    shot(page, "1-texts")
    page.focus("#texts")
    page.keyboard.press("Control+Enter")  # keyboard first: Ctrl+Enter runs the form

    # The job runs in the background; the page polls until it is done.
    expect(page.locator("#progress .badge")).to_have_text("Succeeded", timeout=180_000)
    expect(page.locator("#progress")).to_contain_text("10 of 10 texts")
    heat_cells = page.locator("#heatmap rect.hm-cell")
    expect(heat_cells).to_have_count(100)  # 10 x 10 cosine similarities
    expect(page.locator("#scatter g.pt")).to_have_count(10)
    shot(page, "2-heat-map-and-plot")

    # The diagonal is each text against itself: the highest similarity there is.
    diagonal = heat_cells.nth(0).locator("title").text_content()
    assert "1.00" in diagonal or "1.000" in diagonal, diagonal

    page.fill("#search-q", "a cat on a carpet")
    page.click("#ranking >> xpath=preceding-sibling::form//button[@data-run-button]")
    ranking = page.locator("#ranking ol.ranking li")
    expect(ranking).to_have_count(10)
    top_two = {ranking.nth(0).locator(".rank-text").inner_text(), ranking.nth(1).locator(".rank-text").inner_text()}
    assert top_two == {TEXTS[0], TEXTS[1]}, f"the cat sentences should rank first, got {top_two}"
    scores = [float(ranking.nth(i).locator(".score").inner_text()) for i in range(10)]
    assert scores == sorted(scores, reverse=True)
    shot(page, "3-search")

    embed_run = Run.objects.filter(team=team, capability="embeddings").order_by("id").first()
    assert embed_run.status == "succeeded" and embed_run.model == "multilingual-e5-small"
    assert embed_run.cost == 0  # the local engine is free, and says so
    assert not page.js_errors
