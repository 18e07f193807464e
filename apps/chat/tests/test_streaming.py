"""apps.chat.streaming: escaped out-of-band fragments, at most one frame per interval."""
from __future__ import annotations

import asyncio
import time

from apps.chat.streaming import FrameCoalescer, oob_append, oob_replace, relay_stream
from apps.proxy.providers.base import QueuePosition
from tests.upstream import chat_chunks, completion_chunks, tool_call_chunks


def test_tokens_are_escaped():
    assert oob_append("msg-1-0", "<script>alert(1)</script> & co") == (
        '<div hx-swap-oob="beforeend:#msg-1-0">&lt;script&gt;alert(1)&lt;/script&gt; &amp; co</div>'
    )


def test_oob_replace_marks_the_root_element_once():
    assert oob_replace('<div id="m-1" class="x">hi</div>') == '<div id="m-1" class="x" hx-swap-oob="outerHTML">hi</div>'
    already = '<div id="a" hx-swap-oob="true">x</div>'
    assert oob_replace(already) == already


async def _events(chunks, delay=0.0):
    for chunk in chunks:
        if delay:
            await asyncio.sleep(delay)
        yield chunk


async def test_fast_stream_is_coalesced_and_nothing_is_lost():
    sent: list[tuple[float, str]] = []

    async def send(html):
        sent.append((time.monotonic(), html))

    frames = FrameCoalescer(send=send, interval=0.025)
    pieces = [f"t{i} " for i in range(400)]
    started = time.monotonic()
    await relay_stream(_events(chat_chunks(pieces), delay=0.0005), frames, target=lambda i: f"msg-7-{i}")
    await frames.flush()
    elapsed = time.monotonic() - started
    # Every token arrives, in order, and far fewer frames than chunks were sent.
    text = "".join(html for _, html in sent).replace('<div hx-swap-oob="beforeend:#msg-7-0">', "").replace("</div>", "")
    assert text == "".join(pieces)
    assert len(sent) <= elapsed / 0.025 + 2
    assert len(sent) < len(pieces) / 4
    gaps = [b - a for (a, _), (b, _) in zip(sent, sent[1:])][:-1]  # the explicit final flush may come sooner
    assert min(gaps) >= 0.02


async def test_first_token_goes_out_at_once_and_the_tail_is_not_held_back():
    sent: list[str] = []

    async def send(html):
        sent.append(html)

    frames = FrameCoalescer(send=send, interval=0.05)

    async def events():
        yield chat_chunks(["first"])[1]
        yield chat_chunks(["second"])[1]  # within the interval: waits for the timer
        await asyncio.sleep(0.2)  # the stream pauses: the timer must send "second" meanwhile

    await relay_stream(events(), frames, target=lambda i: "x")
    assert len(sent) == 2 and "first" in sent[0] and "second" in sent[1]
    await frames.aclose()


async def test_choices_tool_calls_queue_and_completions():
    sent: list[str] = []

    async def send(html):
        sent.append(html)

    frames = FrameCoalescer(send=send, interval=0)
    events = [QueuePosition(2), *chat_chunks(["a"], index=0), *chat_chunks(["b"], index=1), *tool_call_chunks("get_weather", '{"city": "Oslo"}')]
    await relay_stream(_events(events), frames, target=lambda i: f"m-{i}", tool_target=lambda i: f"t-{i}", status_target="s")
    joined = "".join(sent)
    assert "queued, position 2" in joined
    assert 'beforeend:#m-0">a<' in joined and 'beforeend:#m-1">b<' in joined
    assert "get_weather(" in joined and "Oslo" in joined
    assert '<span id="s" class="stream-status" hx-swap-oob="outerHTML"></span>' in joined  # cleared at the first token

    sent.clear()
    await relay_stream(_events(completion_chunks([" once", " upon"])), frames, target=lambda i: f"c-{i}")
    assert "".join(sent).count("once") == 1 and "upon" in "".join(sent)
