"""Fixed-window rate limits in the Django cache (Redis when REDIS_URL is set).

Small and shared: sign-in attempts per address and username, /v1 calls per token.

A window opens at a key's first attempt, not on the wall clock's boundaries: with
clock-aligned windows a burst that straddles a boundary (hh:mm:59.9 and hh:mm:00.1) got
twice the limit, and the reply's Retry-After could not say when that window began. The
window's start is kept under its own key and names the counter's key, so a counter never
carries over into the next window.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.core.cache import cache


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    count: int
    retry_after: int  # whole seconds until the window closes


def _start_key(key: str) -> str:
    return f"rl:{key}:start"


def _window_start(key: str, window: float, *, open_one: bool) -> float | None:
    """The current window's start time; opens a window now if none is open and `open_one`."""
    start_key, now = _start_key(key), time.time()
    start = cache.get(start_key)
    if start is not None and start + window <= now:  # caches time out in whole seconds
        cache.delete(start_key)
        start = None
    if start is None and open_one:
        cache.add(start_key, now, timeout=math.ceil(window))
        start = cache.get(start_key, now)  # another process may have opened it first
    return start


def hit(key: str, *, limit: int, window: float, cost: int = 1) -> Verdict:
    """Count one attempt against `key`; refuse once `limit` attempts fall in the window."""
    start = _window_start(key, window, open_one=True)
    count_key = f"rl:{key}:{start!r}"
    cache.add(count_key, 0, timeout=math.ceil(window) + 1)
    try:
        count = cache.incr(count_key, cost)
    except ValueError:  # expired between add and incr
        cache.set(count_key, cost, timeout=math.ceil(window) + 1)
        count = cost
    retry_after = max(1, math.ceil(start + window - time.time()))
    return Verdict(allowed=count <= limit, count=count, retry_after=retry_after)


def peek(key: str, *, window: float) -> int:
    start = _window_start(key, window, open_one=False)
    return 0 if start is None else cache.get(f"rl:{key}:{start!r}", 0)


def reset(key: str, *, window: float) -> None:
    start = _window_start(key, window, open_one=False)
    cache.delete(_start_key(key))
    if start is not None:
        cache.delete(f"rl:{key}:{start!r}")
