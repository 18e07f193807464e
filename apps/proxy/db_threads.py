"""Database trips of the streaming hot paths, on a few long-lived threads that keep their connection.

Under ASGI, Django runs each request's sync code on a fresh thread, and with
CONN_MAX_AGE=0 every trip opens a database connection (on SQLite about a millisecond of
CPU: connect, register functions, the WAL pragmas). A streamed run makes two trips (its
Run row, then its result) and the chat page a third (the conversation), so they run here
instead: a handful of worker threads, each keeping its connection while busy and closing
it after `IDLE_CLOSE_SECONDS` without work (so nothing holds the database open when idle,
e.g. when a test database is dropped). A connection found broken (a PostgreSQL restart) is
reopened once.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import DatabaseError, close_old_connections, connection

logger = logging.getLogger(__name__)
T = TypeVar("T")

WORKERS = 4
IDLE_CLOSE_SECONDS = 1.0


def _deliver(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class _Worker(threading.Thread):
    def __init__(self, number: int) -> None:
        super().__init__(name=f"db-{number}", daemon=True)
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()

    def run(self) -> None:
        while True:
            try:
                job = self.jobs.get(timeout=IDLE_CLOSE_SECONDS)
            except queue.Empty:
                if connection.connection is not None:
                    connection.close()
                continue
            fn, args, kwargs, loop, future = job
            result, error = None, None
            try:
                result = self._call(fn, args, kwargs)
            except BaseException as exc:  # handed to the awaiting coroutine
                error = exc
            try:
                loop.call_soon_threadsafe(_deliver, future, result, error)
            except RuntimeError:  # the loop is gone (its caller gave up)
                pass

    @staticmethod
    def _call(fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
        try:
            return fn(*args, **kwargs)
        except DatabaseError:
            if connection.in_atomic_block or connection.connection is None or connection.is_usable():
                raise
            logger.warning("a database connection was broken; reconnecting once")
            close_old_connections()
            connection.close()
            return fn(*args, **kwargs)


_workers: list[_Worker] = []
_lock = threading.Lock()
_turn = itertools.count()


def _pick() -> _Worker:
    if not _workers:
        with _lock:
            if not _workers:
                for number in range(WORKERS):
                    worker = _Worker(number)
                    worker.start()
                    _workers.append(worker)
    return _workers[next(_turn) % len(_workers)]


async def db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `fn(*args, **kwargs)` (sync, ORM) on a database thread and await the result."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    _pick().jobs.put((fn, args, kwargs, loop, future))
    return await future
