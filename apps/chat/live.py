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
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from apps.chat import render
from apps.chat.render import column_key
from apps.chat.services import ChatPlan, Message, conversation_message_update, conversation_messages_append, new_uid
from apps.chat.streaming import FrameCoalescer, relay_stream
from apps.proxy.errors import ProxyError
from apps.proxy.models import Run
from apps.proxy.services import RunStream

logger = logging.getLogger(__name__)

Sink = Callable[[str], Awaitable[None]]

_live: dict[int, LiveTurn] = {}


# The turn's database trip (its Run rows and the conversation) waits for the first frame
# to go out, at most this long: its ORM work holds the GIL, and overlapping it with a fast
# provider's first token delayed that token by a few milliseconds. A provider that takes
# longer than this to answer leaves the loop idle, and the trip is made while it waits.
SAVE_WAIT_SECONDS = 0.05


def reconnect_grace() -> float:
    return float(getattr(settings, "CHAT_RECONNECT_GRACE_SECONDS", 10.0))


def live_get(conversation_id: int | None) -> LiveTurn | None:
    return _live.get(conversation_id) if conversation_id else None


@dataclass
class LiveTurn:
    """One assistant turn: 1 stream, or 2-6 compare columns sharing a Run group.

    `save()` is the turn's one database trip: it writes a Run per column and the
    conversation, and returns (the conversation, the runs). The model calls start before
    it (each RunStream waits for its row only to record a checkpoint or the outcome).
    """

    team_id: int
    uid: str
    plan: ChatPlan
    save: Callable[[], Awaitable[tuple[Any, list[Run]]]]
    conversation_id: int = 0  # an existing conversation's, or 0 until `save` has written it
    sink: Sink | None = None
    errors: dict[int, ProxyError] = field(default_factory=dict)
    task: asyncio.Task | None = None
    stopped: bool = False
    _grace: asyncio.TimerHandle | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    # Frames wait for the page's opening frame (the empty answer they fill), which the
    # consumer renders while the model calls connect.
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    # Set once the first frame has gone to the page (or a column ended without one).
    first_frame: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.frames = FrameCoalescer(send=self._send)
        self.conversation_id = self.plan.conversation_id or 0
        loop = asyncio.get_running_loop()
        self._rows = [loop.create_future() for _ in self.plan.columns]  # resolved by `_save`
        self.streams = [RunStream(provider=column.provider, request=column.request, kind="chat", write=lambda row=row: row)
                        for column, row in zip(self.plan.columns, self._rows)]
        self._saving: asyncio.Task | None = None

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
        self.first_frame.set()

    async def first_frame_sent(self, *, within: float) -> None:
        """Wait until the first frame has gone out, or the turn ended, or `within` seconds."""
        try:
            await asyncio.wait_for(self.first_frame.wait(), timeout=within)
        except TimeoutError:
            pass

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
        loop = asyncio.get_running_loop()
        self.task = loop.create_task(self._run(), name=f"chat-{self.uid}")
        # Its own task, not the consumer's: a socket closed mid-turn must not leave the
        # rows unwritten (the turn goes on for the reconnect grace, and is then recorded).
        self._saving = loop.create_task(self._save(), name=f"chat-save-{self.uid}")

    async def _save(self) -> None:
        await self.first_frame_sent(within=SAVE_WAIT_SECONDS)
        try:
            conversation, runs = await self.save()
        except BaseException as exc:
            logger.exception("chat: saving turn %s failed", self.uid)
            failed = exc if isinstance(exc, Exception) else RuntimeError("the turn was not saved")
            for row in self._rows:
                row.set_exception(failed)
            self.stop()
            await self._send(render.error_html("This run could not be saved to the database; try again in a moment."))
            return
        for row, run in zip(self._rows, runs):
            row.set_result(run)
        self.register(conversation.pk)
        await self._send(render.conversation_field_html(conversation.pk))

    async def _column(self, index: int) -> None:
        stream = self.streams[index]
        key = column_key(self.uid, index)
        try:
            async with stream:
                try:
                    await relay_stream(
                        stream, self.frames,
                        target=lambda i: f"msg-{key}-{i}",
                        tool_target=lambda i: f"tc-{key}-{i}",
                        status_target=f"status-{key}",
                    )
                finally:
                    self.first_frame.set()  # no frame to wait for: the Run rows are needed now
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
            await self._saving
            if not self.conversation_id:  # not saved: said by `_save`
                await self._send(render.controls_html(running=False))
                return
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
            self.first_frame.set()
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
