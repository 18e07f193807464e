"""Steps on the chat page shared by its browser tests (scripted upstream and local engine)."""
from __future__ import annotations

from playwright.sync_api import expect


def open_chat(page, login, user, provider=None, model="gpt-4o-mini"):
    """Sign in, open a new chat with its websocket live, and pick the model."""
    login(page, user)
    page.goto("/chat/")
    expect(page.locator("[data-ws-state]")).to_have_text("live")
    if provider is not None:
        page.select_option("[data-model-picker]", f"{provider.pk}:{model}")


def use_schema_example(page):
    """Response format json_schema with the page's example schema, checked as valid."""
    page.click("summary:has-text('Response format')")
    page.locator("label:has([value=json_schema])").click()
    page.click("[data-example='#p-schema']")
    expect(page.locator("#schema-check")).to_contain_text("Valid JSON Schema")
