"""Streaming model output to a page over a websocket, a few frames a second.

A provider can send hundreds of chunks a second; a browser that swaps the DOM for each one
falls behind and the page stutters. So the text of many chunks is coalesced into one
websocket frame at most every FRAME_INTERVAL seconds (the first one goes out at once, so
time to first token is not delayed). Each frame is a handful of htmx out-of-band
fragments, one per element that grows:

    <div hx-swap-oob="beforeend:#msg-42-0">escaped text…</div>

htmx's ws extension appends the fragment's children (text nodes) to `#msg-42-0`. Every
token is HTML-escaped here, so model output can never become markup while it streams;
the final message is then rendered server-side (sanitised markdown) and swapped in whole.

Two pieces, usable separately:

    frames = FrameCoalescer(send=lambda html: consumer.send(text_data=html))
    try:
        async with stream:                       # an apps.proxy.services.RunStream
            await relay_stream(stream, frames, target=lambda i: f"msg-{run.pk}-{i}")
        await frames.flush()
    finally:
        await frames.aclose()
    await consumer.send(text_data=render_to_string(...final message...))

`relay_stream` understands both chat chunks (`delta.content`, `delta.tool_calls`) and
legacy completion chunks (`text`), so the completions playground uses it unchanged.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from html import escape

from apps.proxy.providers.base import QueuePosition
from apps.proxy.writes import let_writes_out

logger = logging.getLogger(__name__)

FRAME_INTERVAL = 0.025  # seconds: at most ~40 frames a second per page

Send = Callable[[str], Awaitable[None]]


def oob_append(target_id: str, text: str) -> str:
    """One out-of-band fragment appending `text` (escaped here) to the element #target_id."""
    return f'<div hx-swap-oob="beforeend:#{target_id}">{escape(text, quote=False)}</div>'


def oob_replace(html: str) -> str:
    """Mark a trusted, server-rendered element (with an id) to replace its namesake on the page."""
    head, sep, rest = html.lstrip().partition(">")
    if not sep or "hx-swap-oob" in head:
        return html
    return f'{head} hx-swap-oob="outerHTML">{rest}'


class FrameCoalescer:
    """Batches out-of-band fragments into at most one websocket frame per `interval`.

    `append(target, text)` queues text for #target (escaped when the frame is built);
    `add(html)` queues a trusted server-rendered fragment (a status line, a queue
    position) that goes out in the next frame after the appends. `await tick()` after
    queueing: it sends now if the interval has passed since the last frame, otherwise
    arms one timer that sends when it has, so the tail of a burst is never held back.
    `await flush()` sends what is pending at once (before the final message);
    `await aclose()` cancels the timer and drops what is pending (after a stop).

    Frames are sent one at a time, in order, by `send(html)`.
    """

    def __init__(self, *, send: Send, interval: float = FRAME_INTERVAL) -> None:
        self._send = send
        self.interval = interval
        self._texts: dict[str, list[str]] = {}
        self._extras: list[str] = []
        self._last = 0.0
        self._timer: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self.frames_sent = 0

    @property
    def pending(self) -> bool:
        return bool(self._texts or self._extras)

    def append(self, target: str, text: str) -> None:
        if text:
            self._texts.setdefault(target, []).append(text)

    def add(self, html: str) -> None:
        self._extras.append(html)

    def _take(self) -> str:
        parts = [oob_append(target, "".join(texts)) for target, texts in self._texts.items()]
        parts.extend(self._extras)
        self._texts, self._extras = {}, []
        return "".join(parts)

    async def tick(self) -> None:
        if not self.pending:
            return
        wait = self._last + self.interval - time.monotonic()
        if wait <= 0:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().create_task(self._flush_later(wait))

    async def _flush_later(self, wait: float) -> None:
        await asyncio.sleep(wait)
        self._timer = None
        await self._send_pending()

    async def flush(self) -> None:
        """Send everything pending now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self._send_pending()

    async def _send_pending(self) -> None:
        async with self._lock:
            html = self._take()
            if not html:
                return
            self._last = time.monotonic()
            self.frames_sent += 1
            await self._send(html)
        await let_writes_out()  # the frame leaves now, not after the chunks already buffered

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._texts, self._extras = {}, []


def queue_status_html(status_id: str, position: int) -> str:
    """The fragment shown while the local engine has the request waiting for a model slot."""
    if position <= 0:
        text = "starting…"
    else:
        text = f"queued, position {position}"
    return f'<span id="{status_id}" class="stream-status" hx-swap-oob="outerHTML">{escape(text)}</span>'


async def relay_stream(
    events: AsyncIterable,
    frames: FrameCoalescer,
    *,
    target: Callable[[int], str],
    tool_target: Callable[[int], str] | None = None,
    status_target: str | None = None,
) -> None:
    """Forward a provider stream's text to the page through `frames`.

    target(i):      the element id that choice i's text is appended to.
    tool_target(i): where choice i's tool-call names and arguments stream (optional).
    status_target:  an element id replaced with "queued, position N" while the local
                    engine queues the request, and cleared at the first token.

    Reads each chunk once and keeps no per-chunk objects; the RunStream being iterated
    accumulates the answer itself (`stream.acc`). Errors (ProxyError) and cancellation
    propagate to the caller, which keeps the partial output.
    """
    queued = False
    async for event in events:
        if isinstance(event, dict):
            for choice in event.get("choices") or ():
                index = choice.get("index", 0)
                delta = choice.get("delta")
                if delta is None:  # legacy completion chunk
                    text = choice.get("text")
                    if text:
                        frames.append(target(index), text)
                    continue
                text = delta.get("content")
                if text:
                    frames.append(target(index), text)
                if tool_target is not None and delta.get("tool_calls"):
                    for call in delta["tool_calls"]:
                        function = call.get("function") or {}
                        if function.get("name"):
                            frames.append(tool_target(index), f"\n{function['name']}(")
                        if function.get("arguments"):
                            frames.append(tool_target(index), function["arguments"])
            if queued and status_target and frames.pending:
                frames.add(f'<span id="{status_target}" class="stream-status" hx-swap-oob="outerHTML"></span>')
                queued = False
        elif isinstance(event, QueuePosition) and status_target:
            queued = True
            frames.add(queue_status_html(status_target, event.position))
        await frames.tick()
