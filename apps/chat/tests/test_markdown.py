"""apps.chat.markdown: model output is rendered as markdown and made inert."""
from __future__ import annotations

import pytest

from html.parser import HTMLParser

from apps.chat.markdown import render_markdown


def elements(html: str) -> list[tuple[str, dict]]:
    """Every element the browser would build from `html`, with its attributes."""
    found = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs)))

    Parser().feed(html)
    return found


@pytest.mark.parametrize("payload", [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    "![x](javascript:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    '<svg onload="alert(1)"></svg>',
    '<iframe src="https://evil.example"></iframe>',
])
def test_payloads_are_inert(payload):
    html = str(render_markdown(f"before {payload} after"))
    for tag, attrs in elements(html):
        assert tag not in ("script", "img", "svg", "iframe", "object", "embed")
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        href = (attrs.get("href") or "").strip().lower()
        assert not href.startswith(("javascript:", "data:", "vbscript:")), href
    assert "before" in html and "after" in html


def test_markdown_features():
    html = str(render_markdown("# T\n\n**bold** `x`\n\n```python\nprint(1)\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n[ok](https://example.com)"))
    assert "<strong>bold</strong>" in html and "<code>x</code>" in html
    assert '<pre><code class="language-python">print(1)' in html
    assert "<table>" in html
    assert 'href="https://example.com"' in html and 'rel="noopener noreferrer nofollow"' in html


def test_images_become_links():
    html = str(render_markdown("![a cat](https://example.com/cat.png)"))
    assert "<img" not in html and '<a href="https://example.com/cat.png"' in html and "a cat" in html


def test_empty():
    assert render_markdown("") == "" and render_markdown(None) == ""
