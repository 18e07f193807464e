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
"""
from __future__ import annotations

from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
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


def with_v1(app):
    """An ASGI app sending HTTP requests under /v1/ to V1Handler and the rest to `app`."""
    v1 = V1Handler()

    async def router(scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(V1_PREFIX):
            return await v1(scope, receive, send)
        return await app(scope, receive, send)

    return router
