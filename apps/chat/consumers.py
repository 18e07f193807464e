"""The chat page's websocket: Run, Stop, Regenerate, pick a compared answer, re-attach.

Thin: it authenticates, hands the form to apps.chat.services.chat_plan, starts a LiveTurn
(apps.chat.live) and relays what it renders. Messages are the htmx ws extension's JSON
(the form's fields, plus `action` from hx-vals on the buttons).
"""
from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.accounts.models import Role
from apps.accounts.sockets import socket_member_connect
from apps.chat import render
from apps.chat.live import LiveTurn, live_get
from apps.chat.models import Conversation
from apps.chat.services import ChatInputError, Message, chat_plan, conversation_message_update, new_uid, turn_save
from apps.chat.streaming import oob_replace
from apps.proxy.db_threads import db
from apps.proxy.errors import ProxyError
from apps.proxy.models import Run

logger = logging.getLogger(__name__)


class ChatConsumer(AsyncJsonWebsocketConsumer):
    # A turn streams to the page from this process (apps.chat.live), not through the
    # channel layer, so the consumer does not subscribe to it: with Redis, a subscription
    # is a blocking read per open page, and under load (the 200-stream fan-out bench) one
    # that outlived a long stream failed its read and closed the socket with 1011.
    channel_layer_alias = None

    async def connect(self) -> None:
        if not await socket_member_connect(self):
            return
        self.turn: LiveTurn | None = None
        await self.accept()
        query = parse_qs((self.scope.get("query_string") or b"").decode())
        conversation_id = _int((query.get("conversation") or [""])[0])
        if conversation_id:
            await self._reattach(conversation_id, pending=(query.get("pending") or [""])[0])

    async def disconnect(self, code: int) -> None:
        turn = getattr(self, "turn", None)
        if turn is not None:
            turn.detach(self.send_html)
            self.turn = None

    async def send_html(self, html: str) -> None:
        await self.send(text_data=html)

    async def receive_json(self, content: dict[str, Any], **kwargs) -> None:
        if not isinstance(content, dict):
            return
        action = str(content.get("action") or "run")
        try:
            if action == "stop":
                await self._stop(content)
            elif action == "pick":
                await self._pick(content)
            elif action in ("run", "regenerate"):
                await self._run(content)
        except ChatInputError as exc:
            await self.send_html(render.error_html(exc.message, field=exc.field))
        except ProxyError as exc:
            await self.send_html(render.error_html(exc.message))

    # -- actions --------------------------------------------------------------------------
    def _writable(self) -> None:
        if not self.membership.allows(Role.EDITOR):
            raise ChatInputError(
                f"Your role in {self.membership.team.name} is viewer: you can read conversations but not run models. "
                "Ask an owner to make you an editor."
            )

    async def _run(self, content: dict[str, Any]) -> None:
        self._writable()
        conversation_id = _int(str(content.get("conversation") or ""))
        existing = live_get(conversation_id)
        if existing is not None or (self.turn is not None and not self.turn.done.is_set()):
            raise ChatInputError("A run is in progress: Stop it first.")
        if conversation_id and not await database_sync_to_async(
            Conversation.objects.filter(team=self.team, pk=conversation_id).exists
        )():
            raise ChatInputError("That conversation does not exist in your team.")
        plan = await chat_plan(team=self.team, data=content)
        # Presentation mode runs a saved version as it is: its runs are recorded against it.
        version_value = str(content.get("prompt_version") or "")
        version_id = await database_sync_to_async(_team_version_id)(self.team, version_value) if version_value else None

        uid = new_uid()
        group = uuid.uuid4().hex if len(plan.columns) > 1 else ""
        save = functools.partial(db, turn_save, team=self.team, user=self.user, plan=plan, uid=uid, group=group,
                                 prompt_version_id=version_id)
        # The model calls start first; the page's opening frame is rendered while they
        # connect, and the turn's database trip (its Run rows and the conversation) follows
        # the first token (apps.chat.live.SAVE_WAIT_SECONDS), so neither delays that token.
        turn = LiveTurn(team_id=self.team.pk, uid=uid, plan=plan, save=save)
        turn.attach(self.send_html)
        self.turn = turn
        turn.start()
        try:
            await asyncio.sleep(0)  # let the requests go out before rendering
            # Before the first token: the page drops what a regenerate replaces, shows the new
            # user message and an empty answer that the stream fills, and swaps Run for Stop.
            parts = [render.clear_error_html(), render.controls_html(running=True)]
            parts += [f'<div id="m-{u}" hx-swap-oob="delete"></div>' for u in plan.removed]
            added = render.message_html(plan.added, []) if plan.added else ""
            turn_html = render.streaming_turn_html(uid=uid, plan=plan, streams=turn.streams)
            parts.append(f'<div hx-swap-oob="beforeend:#messages">{added}{turn_html}</div>')
            if plan.added:
                parts.append(render.composer_clear_html())
            await self.send_html("".join(parts))
        finally:
            turn.opened.set()

    async def _stop(self, content: dict[str, Any]) -> None:
        turn = self.turn or live_get(_int(str(content.get("conversation") or "")))
        if turn is not None and turn.team_id == self.team.pk:
            turn.stop()

    async def _pick(self, content: dict[str, Any]) -> None:
        """Compare mode: one column's answer becomes the assistant message to continue from."""
        self._writable()
        conversation_id = _int(str(content.get("conversation") or ""))
        uid = str(content.get("from") or "")
        run_id = _int(str(content.get("run") or ""))
        run = await database_sync_to_async(lambda: Run.objects.filter(team=self.team, pk=run_id).first())()
        if run is None or not uid:
            raise ChatInputError("That answer is no longer available; reload the page.")
        choice0 = ((run.output or {}).get("choices") or [{}])[0]
        message = Message(uid=uid, role="assistant", content=run.output_text,
                          tool_calls=choice0.get("tool_calls") or [], runs=[run.pk])
        if conversation_id:
            await database_sync_to_async(self._owned_update)(conversation_id, uid, message)
        html = await database_sync_to_async(render.message_html)(message, [run])
        await self.send_html(oob_replace(html))

    def _owned_update(self, conversation_id: int, uid: str, message: Message) -> None:
        if Conversation.objects.filter(team=self.team, pk=conversation_id).exists():
            changes = message.as_state()
            changes.pop("uid")
            conversation_message_update(conversation_id=conversation_id, uid=uid, **changes)

    async def _reattach(self, conversation_id: int, *, pending: str) -> None:
        """A page (re)loaded while its conversation was generating: show it, then follow it."""
        turn = live_get(conversation_id)
        if turn is not None and turn.team_id == self.team.pk:
            self.turn = turn
            turn.attach(self.send_html)
            await self.send_html(turn.snapshot_html() + render.controls_html(running=True))
            return
        if pending:
            # Finished between the page render and this connect: send the final answer.
            html = await database_sync_to_async(_final_message_html)(self.team, conversation_id, pending)
            if html:
                await self.send_html(html + render.controls_html(running=False))


def _final_message_html(team, conversation_id: int, uid: str) -> str:
    from apps.chat.selectors import conversation_messages_with_runs

    conversation = Conversation.objects.filter(team=team, pk=conversation_id).first()
    if conversation is None:
        return ""
    for message, runs, names in conversation_messages_with_runs(conversation=conversation):
        if message.uid == uid:
            return oob_replace(render.message_html(message, runs, tool_names=names))
    return ""


def _team_version_id(team, value: str) -> int | None:
    from apps.prompts.models import PromptVersion

    version_id = _int(value)
    if version_id and PromptVersion.objects.filter(pk=version_id, prompt__team=team).exists():
        return version_id
    return None


def _int(value: str) -> int | None:
    return int(value) if value and value.isdigit() else None
