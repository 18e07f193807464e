"""/v1 served by a Django ASGI handler without the pages' middleware.

Sessions, CSRF, messages, htmx and the team switcher mean nothing to an API called with
a bearer token, and WhiteNoise and the team middleware are sync-only: in the full stack
every /v1 request would hop to a thread and back (and the view through async_to_sync)
before the first byte. Here the view runs straight on the event loop, behind only the
SecurityMiddleware (HTTPS redirect, HSTS, nosniff, referrer policy). URL routing, signals
and error handling are Django's own, from the same ROOT_URLCONF.

SecurityMiddleware's hooks are called inline: Django's MiddlewareMixin in async mode runs
process_request and process_response through sync_to_async, i.e. on a new per-request
thread, twice per request; these two only read settings and set headers.

For the same reason the request_started/request_finished signals are sent inline
(`V1Handler.handle`): Django sends them with `asend`, which runs their sync receivers
(reset_queries, close_old_connections, close_caches) on the request's own thread-sensitive
thread, so every /v1 request started a thread before its view ran (about 0.6 ms of the
time to first token). Those receivers tidy the connections of the thread they run on;
/v1 keeps none on the event loop's thread (its database trips run on apps/proxy/db_threads.py's
threads, or through database_sync_to_async, which closes old connections itself).
"""
from __future__ import annotations

import asyncio

from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.urls import set_script_prefix
from django.utils.module_loading import import_string

V1_PREFIX = "/v1/"
# Middleware whose process_request/process_response only compute (no I/O, no database):
# safe to call on the event loop.
V1_MIDDLEWARE = ["django.middleware.security.SecurityMiddleware"]


def _inline(middleware_class, get_response):
    middleware = middleware_class(get_response)
    process_request = getattr(middleware, "process_request", None)
    process_response = getattr(middleware, "process_response", None)

    async def call(request):
        response = process_request(request) if process_request else None
        if response is None:
            response = await get_response(request)
        if process_response:
            response = process_response(request, response)
        return response

    return call


class V1Handler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        handler = convert_exception_to_response(self._get_response_async)
        for path in reversed(V1_MIDDLEWARE):
            handler = convert_exception_to_response(_inline(import_string(path), handler))
        self._middleware_chain = handler

    async def handle(self, scope, receive, send):
        """Django's ASGIHandler.handle (5.2), with the request signals sent inline."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            error_response.close()
            return

        async def process_request(request, send):
            response = await self.run_get_response(request)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass  # the client disconnected while the response was being sent
            return response

        # As Django: the disconnect listener first, so that a client that goes away
        # cancels the view (and with it the upstream request).
        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            signals.request_finished.send(sender=self.__class__)
        else:
            response.close()  # sends request_finished
        body_file.close()


def with_v1(app):
    """An ASGI app sending HTTP requests under /v1/ to V1Handler and the rest to `app`."""
    v1 = V1Handler()

    async def router(scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(V1_PREFIX):
            return await v1(scope, receive, send)
        return await app(scope, receive, send)

    return router
