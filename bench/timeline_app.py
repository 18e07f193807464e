"""Playground's ASGI app with timestamps on the way to /v1's first chunk (bench/timeline.py).

For measuring only, never for serving: it wraps functions of daphne, Twisted, httpx and
Playground to note, for each /v1 request, the milliseconds from its bytes arriving to each
step. When the server stops (SIGTERM: daphne stops its reactor and exits) it writes the
p50/p90 of every step to $TIMELINE_OUT as JSON.
"""
from __future__ import annotations

import atexit
import json
import os
import time
from collections import defaultdict

from playground.asgi import application  # noqa: F401  (what daphne serves)

import httpx  # noqa: E402
from daphne import http_protocol  # noqa: E402
from twisted.internet import abstract  # noqa: E402
from twisted.web import http as twisted_http  # noqa: E402

from apps.proxy import v1, v1_asgi  # noqa: E402
from bench.timeline import STEPS  # noqa: E402

_now = time.perf_counter
_marks: dict[str, list[float]] = defaultdict(list)
_request = {"t0": None, "first": None}  # sequential requests: one at a time is all this tracks


def _mark(step: int) -> None:
    if _request["t0"] is not None:
        _marks[STEPS[step]].append((_now() - _request["t0"]) * 1000)


def _wrap(owner, name, before=None, after=None, is_async=False):
    original = getattr(owner, name)
    if is_async:
        async def wrapper(*args, **kwargs):
            if before:
                before(*args)
            result = await original(*args, **kwargs)
            if after:
                after(*args)
            return result
    else:
        def wrapper(*args, **kwargs):
            if before:
                before(*args)
            result = original(*args, **kwargs)
            if after:
                after(*args)
            return result
    setattr(owner, name, wrapper)


def _arrived(channel, data: bytes) -> None:
    if data.startswith(b"POST /v1/"):
        _request.update(t0=_now(), first=None)


def _reply(request, message) -> None:
    if message["type"] == "http.response.start":
        _mark(5)
    elif _request["first"] is None and message.get("body"):
        _mark(6)
        _request["first"] = "handed"


def _written(*_args) -> None:
    if _request["first"] == "handed":
        _mark(7)
        _request["first"] = "written"


_wrap(twisted_http.HTTPChannel, "dataReceived", before=_arrived)
_wrap(http_protocol.WebRequest, "process", before=lambda *a: _mark(0))
_wrap(v1_asgi.V1Handler, "handle", before=lambda *a: _mark(1), is_async=True)
_wrap(v1, "_resolve", before=lambda *a: _mark(2), is_async=True)
_wrap(httpx.AsyncClient, "send", before=lambda *a: _mark(3), after=lambda *a: _mark(4), is_async=True)
_wrap(http_protocol.WebRequest, "handle_reply", before=_reply)
_wrap(abstract.FileDescriptor, "doWrite", after=_written)


def _dump() -> None:
    out = {}
    for step in STEPS:
        values = sorted(_marks.get(step, []))
        if values:
            out[step] = {"n": len(values), "p50": values[len(values) // 2], "p90": values[int(len(values) * 0.9)]}
    with open(os.environ["TIMELINE_OUT"], "w") as f:
        json.dump(out, f)


atexit.register(_dump)
