"""Turns being generated right now, owned by the server process rather than by a websocket.

Why not by the websocket: the issue asks that a reload mid-stream shows the run, and
DESIGN.md that closing the tab cancels it. A reload and a closed tab look the same to the
server (the socket closes), so the difference is time:

- When the socket that watches a turn closes, the turn keeps generating for
  RECONNECT_GRACE seconds (settings.CHAT_RECONNECT_GRACE_SECONDS, default 10).
- A page that reconnects for the same conversation within that time (a reload, or the
  ws extension's automatic reconnect after a network blip) re-attaches: it gets the text
  so far at once, then the rest as it streams, then the final message.
- Nobody back in time: the turn is cancelled exactly as Stop would (the upstream request
  is closed, the runs are recorded as cancelled with their partial output, and the
  conversation keeps that partial answer).

Stop cancels at once. One process-wide registry, keyed by conversation id; with several
server processes a reload that lands on another process shows the run once it is done
(after the grace period it is cancelled, with what had arrived).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from django.conf import settings

from apps.chat import render
from apps.chat.services import ChatPlan, Message, conversation_message_update, conversation_messages_append, new_uid
from apps.chat.streaming import FrameCoalescer, relay_stream
from apps.proxy.errors import ProxyError
from apps.proxy.services import RunStream

logger = logging.getLogger(__name__)

Sink = Callable[[str], Awaitable[None]]

_live: dict[int, LiveTurn] = {}


def reconnect_grace() -> float:
    return float(getattr(settings, "CHAT_RECONNECT_GRACE_SECONDS", 10.0))


def live_get(conversation_id: int | None) -> LiveTurn | None:
    return _live.get(conversation_id) if conversation_id else None


@dataclass
class LiveTurn:
    """One assistant turn: 1 stream, or 2-6 compare columns sharing a Run group."""

    conversation_id: int  # 0 until the conversation row is written (see `register`)
    team_id: int
    uid: str
    plan: ChatPlan
    streams: list[RunStream]
    sink: Sink | None = None
    errors: dict[int, ProxyError] = field(default_factory=dict)
    task: asyncio.Task | None = None
    stopped: bool = False
    _grace: asyncio.TimerHandle | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    # Frames wait for the page's opening frame (the empty answer they fill), which the
    # consumer sends once the conversation is saved. The upstream request starts first,
    # so the database writes overlap its time to first token instead of adding to it.
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.frames = FrameCoalescer(send=self._send)

    def register(self, conversation_id: int) -> None:
        self.conversation_id = conversation_id
        _live[conversation_id] = self

    # -- watchers ----------------------------------------------------------------------
    async def _send(self, html: str) -> None:
        if not self.opened.is_set():
            await self.opened.wait()
        sink = self.sink
        if sink is None:
            return
        try:
            await sink(html)
        except Exception:  # the socket went away between frames: keep generating
            logger.debug("chat: a frame could not be sent; the watcher left", exc_info=True)
            if self.sink == sink:
                self.detach(sink)

    def attach(self, sink: Sink) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        self.sink = sink

    def detach(self, sink: Sink) -> None:
        """The watching socket closed: keep going for the grace period, then cancel."""
        if self.sink != sink:  # bound methods compare equal, never identical
            return
        self.sink = None
        if self.task is not None and not self.task.done():
            self._grace = asyncio.get_running_loop().call_later(reconnect_grace(), self._abandoned)

    def _abandoned(self) -> None:
        self._grace = None
        if self.sink is None:
            logger.info("chat: conversation %s was left mid-stream; cancelling its runs", self.conversation_id)
            self.stop()

    def stop(self) -> None:
        if self.stopped or self.task is None or self.task.done():
            return
        self.stopped = True
        self.task.cancel()

    # -- running -----------------------------------------------------------------------
    def start(self) -> None:
        if self.conversation_id:
            _live[self.conversation_id] = self
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"chat-{self.conversation_id}")

    async def _column(self, index: int) -> None:
        stream = self.streams[index]
        run_id = stream.run.pk
        try:
            async with stream:
                await relay_stream(
                    stream, self.frames,
                    target=lambda i: f"msg-{run_id}-{i}",
                    tool_target=lambda i: f"tc-{run_id}-{i}",
                    status_target=f"status-{run_id}",
                )
        except ProxyError as exc:  # recorded on the Run by RunStream, partial output kept
            self.errors[index] = exc

    async def _run(self) -> None:
        try:
            await asyncio.gather(*(self._column(i) for i in range(len(self.streams))))
        except asyncio.CancelledError:
            pass  # Stop, or nobody came back: each RunStream has recorded itself as cancelled
        finally:
            await asyncio.shield(self._finish())

    async def _finish(self) -> None:
        try:
            await asyncio.wait_for(self.opened.wait(), timeout=30)
            await self.frames.aclose()
            # A cancelled column's RunStream writes its Run from a shielded task; wait for it.
            for _ in range(200):
                if all(s.status != "running" for s in self.streams):
                    break
                await asyncio.sleep(0.01)
            html, changes, extra = await database_sync_to_async(self._final)()
            await database_sync_to_async(conversation_message_update)(conversation_id=self.conversation_id, uid=self.uid, **changes)
            if extra:
                await database_sync_to_async(conversation_messages_append)(conversation_id=self.conversation_id, messages=extra)
            await self._send(html)
        except Exception:
            logger.exception("chat: finishing conversation %s failed", self.conversation_id)
        finally:
            if _live.get(self.conversation_id) is self:
                del _live[self.conversation_id]
            if self._grace is not None:
                self._grace.cancel()
            self.done.set()

    def _final(self) -> tuple[str, dict, list[Message]]:
        runs = [s.run for s in self.streams]
        compare = len(runs) > 1
        extra: list[Message] = []
        if compare:
            message = Message(uid=self.uid, role="assistant", runs=[r.pk for r in runs], compare=True)
        else:
            run = runs[0]
            choice0 = (run.output.get("choices") or [{}])[0] if run.output else {}
            message = Message(uid=self.uid, role="assistant", content=choice0.get("text") or "",
                              tool_calls=choice0.get("tool_calls") or [], runs=[run.pk])
            # Each tool call gets a result message for the person to fill in, then Run continues.
            for call in message.tool_calls:
                extra.append(Message(uid=new_uid(), role="tool", tool_call_id=call.get("id", "")))
        html = render.final_turn_html(message=message, runs=runs, extra=extra, response_format=self.plan.response_format)
        changes = message.as_state()
        changes.pop("uid")
        return html, changes, extra

    def snapshot_html(self) -> str:
        """The turn as it is now, for a page that re-attaches mid-stream."""
        return render.streaming_turn_html(uid=self.uid, plan=self.plan, streams=self.streams, snapshot=True)
