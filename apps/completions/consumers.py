"""The completions page's websocket: Run and Stop.

Thin: it authenticates, hands the form to apps.completions.services.completion_plan,
starts the proxy's RunStream and relays it with apps.chat.streaming (coalesced, escaped,
out-of-band fragments appended to the completion after the prompt). Stop, or the tab
closing, cancels the task: the upstream request is closed and the Run keeps its partial
output as 'cancelled'. Messages are the htmx ws extension's JSON (the form's fields,
plus `action` from hx-vals on the Stop button).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.accounts.models import Role
from apps.accounts.sockets import socket_member_connect
from apps.completions import render
from apps.completions.services import CompletionInputError, completion_plan
from apps.chat.streaming import FrameCoalescer, relay_stream
from apps.proxy import services as proxy
from apps.proxy.errors import ProxyError
from apps.proxy.services import RunStream

logger = logging.getLogger(__name__)


class CompletionConsumer(AsyncJsonWebsocketConsumer):
    # Nothing is ever sent to this socket through the channel layer (no groups: the stream
    # is relayed in-process), so it does not subscribe to it. With Redis, a subscription
    # is a blocking read per open page, and one that outlives a long stream fails its
    # read timeout when the page closes.
    channel_layer_alias = None

    async def connect(self) -> None:
        if not await socket_member_connect(self):
            return
        self.task: asyncio.Task | None = None
        self.closed = False
        await self.accept()

    async def disconnect(self, code: int) -> None:
        # A closed tab is a Stop: nothing watches this completion any more.
        self.closed = True
        task = getattr(self, "task", None)
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except BaseException:  # the run is recorded by RunStream whatever happened
                pass

    async def send_html(self, html: str) -> None:
        if not self.closed:
            await self.send(text_data=html)

    async def receive_json(self, content: dict[str, Any], **kwargs) -> None:
        if not isinstance(content, dict):
            return
        action = str(content.get("action") or "run")
        try:
            if action == "stop":
                if self.task is not None and not self.task.done():
                    self.task.cancel()
            elif action == "run":
                await self._run(content)
        except CompletionInputError as exc:
            await self.send_html(render.error_html(exc.message, field=exc.field))
        except ProxyError as exc:
            await self.send_html(render.error_html(exc.message))

    async def _run(self, content: dict[str, Any]) -> None:
        if not self.membership.allows(Role.EDITOR):
            raise CompletionInputError(
                f"Your role in {self.membership.team.name} is viewer: you can read prompts and runs but not run models. "
                "Ask an owner to make you an editor."
            )
        if self.task is not None and not self.task.done():
            raise CompletionInputError("A completion is in progress: Stop it first.")
        plan = await completion_plan(team=self.team, data=content)
        stream = await proxy.stream_start(
            team=self.team, user=self.user, provider=plan.provider, request=plan.request, kind="completion",
            prompt_version_id=plan.prompt_version_id,
        )
        request = plan.request
        opening = render.streaming_html(
            run=stream.run, prompt=request["prompt"], suffix=request.get("suffix", ""),
            n=int(request.get("n") or 1), echo=bool(request.get("echo")),
        )
        await self.send_html(render.clear_error_html() + render.controls_html(running=True) + opening)
        self.task = asyncio.get_running_loop().create_task(self._relay(stream), name=f"completion-{stream.run.pk}")

    async def _relay(self, stream: RunStream) -> None:
        run_id = stream.run.pk
        frames = FrameCoalescer(send=self.send_html)
        try:
            async with stream:
                await relay_stream(stream, frames, target=lambda i: f"out-{run_id}-{i}", status_target=f"status-{run_id}")
            await frames.flush()
        except ProxyError:
            pass  # recorded on the Run (partial output kept) and shown under the text
        except asyncio.CancelledError:
            pass  # Stop, or the tab closed: RunStream recorded it as cancelled
        finally:
            await frames.aclose()
            await asyncio.shield(self._final(stream))

    async def _final(self, stream: RunStream) -> None:
        # A cancelled RunStream writes its Run from a shielded task; wait for it.
        for _ in range(200):
            if stream.status != "running":
                break
            await asyncio.sleep(0.01)
        if self.closed:
            return
        try:
            html = await database_sync_to_async(render.result_html)(stream.run, oob=True)
            await self.send_html(html + render.controls_html(running=False))
        except Exception:  # the socket went away while the final frame was built
            logger.debug("completions: the final frame could not be sent", exc_info=True)
