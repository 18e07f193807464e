"""Browser tests: Debian's chromium driven by Playwright against the live ASGI server.

`page` is a fresh browser context; `login(page, user)` signs it in (session cookie, no
form typing); `shot(page, "name")` saves test-artifacts/<test>/<name>.png to look at.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest


CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]

# Playwright's sync API runs an event loop in this thread; Django's ORM refuses sync
# calls next to a running loop unless told it is safe (the tests are sequential).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)
            if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
                item.add_marker(pytest.mark.skip(reason="chromium is not installed: apt-get install chromium (make browser)"))


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_asgi, request):
    context = browser.new_context(base_url=live_asgi.url, viewport={"width": 1360, "height": 860})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    yield page
    context.close()


@pytest.fixture
def login(live_asgi):
    """Sign a page's browser context in as `user` (and optionally switch to `team`)."""
    from django.test import Client

    def do_login(page, user, team=None):
        client = Client()
        client.force_login(user)
        if team is not None:
            session = client.session
            session["team_id"] = team.pk
            session.save()
        page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_asgi.url}])
        return page

    return do_login


@pytest.fixture
def shot(request):
    """Save a screenshot under test-artifacts/<test name>/<name>.png."""
    folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.name)

    def take(page, name: str, *, full_page: bool = True) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take
