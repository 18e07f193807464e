"""Fair use of 2 CPU cores: at most N generations per model at once, the rest wait in order.

The scheduler is process-wide and thread-safe (plain `threading.Lock`), not tied to one
event loop: requests may come from Daphne's loop, from a test's loop, or from a thread.
A waiting request holds a Ticket; whenever the queue moves, every waiter is woken through
its own loop (`call_soon_threadsafe`) and re-reads its position, so pages can show
"2 requests ahead of you" as it counts down.

The slot is released by whoever ends the generation (the generation thread when it
stops, or the ticket's owner if it leaves the queue before starting), never twice.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from django.conf import settings

from apps.proxy.providers.base import QueuePosition

logger = logging.getLogger(__name__)

_counter = itertools.count(1)


@dataclass(eq=False)
class Ticket:
    model: str
    id: int = field(default_factory=lambda: next(_counter))
    slot: int | None = None  # set when granted
    released: bool = False
    loop: asyncio.AbstractEventLoop | None = None
    _wake: asyncio.Future | None = None

    def _notify(self) -> None:
        loop, wake = self.loop, self._wake
        if loop is None or wake is None:
            return

        def set_done() -> None:
            if not wake.done():
                wake.set_result(None)

        try:
            loop.call_soon_threadsafe(set_done)
        except RuntimeError:  # that loop is closed: its request is gone
            pass


class ModelQueue:
    def __init__(self, model: str) -> None:
        self.model = model
        self.busy: set[int] = set()
        self.waiting: deque[Ticket] = deque()

    @property
    def capacity(self) -> int:
        return max(1, int(getattr(settings, "ENGINE_CONCURRENCY_PER_MODEL", 1)))

    def _free_slot(self) -> int | None:
        for slot in range(self.capacity):
            if slot not in self.busy:
                return slot
        return None


class Scheduler:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, ModelQueue] = {}

    def _queue(self, model: str) -> ModelQueue:
        queue = self._queues.get(model)
        if queue is None:
            queue = self._queues[model] = ModelQueue(model)
        return queue

    def enqueue(self, model: str) -> Ticket:
        """Join the model's queue; the ticket is granted at once when a slot is free."""
        ticket = Ticket(model=model)
        with self._lock:
            queue = self._queue(model)
            queue.waiting.append(ticket)
            self._grant(queue)
        return ticket

    def _grant(self, queue: ModelQueue) -> None:
        """Hand free slots to the oldest waiters, then tell everyone still waiting (lock held)."""
        while queue.waiting:
            slot = queue._free_slot()
            if slot is None:
                break
            ticket = queue.waiting.popleft()
            ticket.slot = slot
            queue.busy.add(slot)
            ticket._notify()
        for ticket in list(queue.waiting):
            ticket._notify()

    def position(self, ticket: Ticket) -> int | None:
        """How many requests are ahead of this one (None once granted)."""
        with self._lock:
            if ticket.slot is not None:
                return None
            queue = self._queue(ticket.model)
            try:
                # Ahead of it: the generations running now and the waiters queued before it.
                return queue.waiting.index(ticket) + len(queue.busy)
            except ValueError:
                return None

    async def wait(self, ticket: Ticket) -> AsyncIterator[QueuePosition]:
        """Yield QueuePosition whenever the position changes, until the ticket is granted."""
        last = None
        while True:
            with self._lock:
                granted = ticket.slot is not None
                if not granted:
                    ticket.loop = asyncio.get_running_loop()
                    ticket._wake = ticket.loop.create_future()
                    wake = ticket._wake
            if granted:
                return
            position = self.position(ticket)
            if position is not None and position != last:
                last = position
                yield QueuePosition(position)
            await wake

    def release(self, ticket: Ticket) -> None:
        """Free the ticket's slot (or leave the queue). Idempotent."""
        with self._lock:
            if ticket.released:
                return
            ticket.released = True
            queue = self._queue(ticket.model)
            if ticket.slot is not None:
                queue.busy.discard(ticket.slot)
            else:
                try:
                    queue.waiting.remove(ticket)
                except ValueError:
                    pass
            self._grant(queue)

    def stats(self) -> dict[str, dict[str, int]]:
        """{model: {"running": n, "queued": n, "capacity": n}} for the management page."""
        with self._lock:
            return {
                model: {"running": len(q.busy), "queued": len(q.waiting), "capacity": q.capacity}
                for model, q in self._queues.items()
            }


scheduler = Scheduler()
