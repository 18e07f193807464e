"""Model output as safe HTML: markdown rendered server-side, then sanitised.

Model output is untrusted input (a prompt can make a model write anything), so it goes
through two independent layers:
1. markdown-it-py with raw HTML disabled: `<script>` in the text becomes text, and its
   link validator refuses `javascript:`/`vbscript:`/`data:` URLs;
2. nh3 (ammonia) with an allow-list of tags, attributes and URL schemes, so even a bug in
   (1) cannot produce an event handler, a script or an active URL.

Images are not rendered: a model could otherwise make every viewer's browser fetch a URL
(a tracking pixel). Code blocks keep their `language-*` class; static/js/app.js adds a
copy button to every `.md pre`. Wrap the result in an element with class "md".

    from apps.chat.markdown import render_markdown
    html = render_markdown(run.output_text)   # SafeString, ready for a template
"""
from __future__ import annotations

from functools import lru_cache
from html import escape

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "s", "del", "ins",
    "code", "pre", "kbd", "samp", "sub", "sup", "blockquote", "ul", "ol", "li", "dl", "dt", "dd",
    "a", "table", "thead", "tbody", "tr", "th", "td", "span", "div",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},
    "th": {"style"},
    "td": {"style"},
    "ol": {"start"},
}
URL_SCHEMES = {"http", "https", "mailto"}


def _image_as_link(renderer, tokens, idx, options, env) -> str:
    # An image becomes a link to it (its alt text), so nothing is fetched by merely viewing.
    token = tokens[idx]
    src = escape(token.attrGet("src") or "")
    alt = escape("".join(child.content for child in token.children or []) or "image")
    return f'<a href="{src}">{alt}</a>'


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(["table", "strikethrough"])
    md.add_render_rule("image", _image_as_link)
    return md


def _sanitize(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"text-align"},
        strip_comments=True,
    )


def render_markdown(text: str | None) -> SafeString:
    """Markdown (as models write it) to sanitised HTML. Empty input gives an empty string."""
    if not text:
        return mark_safe("")
    return mark_safe(_sanitize(_parser().render(text)))


def sanitize_html(html: str) -> SafeString:
    """The same allow-list for HTML from elsewhere (e.g. an imported prompt's description)."""
    return mark_safe(_sanitize(html or ""))
