"""Fixed-window rate limits in the Django cache (Redis when REDIS_URL is set).

Small and shared: sign-in attempts per address and username, /v1 calls per token.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.cache import cache


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    count: int
    retry_after: int  # seconds until the window resets


def hit(key: str, *, limit: int, window: int, cost: int = 1) -> Verdict:
    """Count one attempt against `key`; refuse once `limit` attempts fall in the window."""
    bucket = int(time.time() // window)
    cache_key = f"rl:{key}:{bucket}"
    cache.add(cache_key, 0, timeout=window + 1)
    try:
        count = cache.incr(cache_key, cost)
    except ValueError:  # expired between add and incr
        cache.set(cache_key, cost, timeout=window + 1)
        count = cost
    retry_after = window - int(time.time()) % window
    return Verdict(allowed=count <= limit, count=count, retry_after=retry_after)


def peek(key: str, *, window: int) -> int:
    bucket = int(time.time() // window)
    return cache.get(f"rl:{key}:{bucket}", 0)


def reset(key: str, *, window: int) -> None:
    bucket = int(time.time() // window)
    cache.delete(f"rl:{key}:{bucket}")
