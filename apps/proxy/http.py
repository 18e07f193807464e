"""Upstream HTTP: one pooled httpx.AsyncClient per event loop on a lean HTTP/1.1
transport (apps/proxy/wire.py), explicit timeouts, retries only where they are safe, and
every failure mapped to a ProxyError a person can act on.

Retries (with backoff) cover 429 (honouring Retry-After), 502, 503, 504 and connect
errors, and only before any byte of a stream has been handed on: once a stream has
started, a retry would duplicate output.
"""
from __future__ import annotations

import asyncio
import logging
import re
import ssl
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from django.conf import settings

from apps.proxy.errors import ProxyError
from apps.proxy.redaction import redact, secrets_in_headers
from apps.proxy.wire import LeanTransport

logger = logging.getLogger(__name__)

RETRY_STATUSES = {429, 502, 503, 504}

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()


def timeouts() -> httpx.Timeout:
    """Connect quickly or fail; `read` is the longest silence allowed between two chunks."""
    return httpx.Timeout(
        connect=settings.UPSTREAM_CONNECT_TIMEOUT,
        read=settings.UPSTREAM_READ_TIMEOUT,
        write=60.0,
        pool=30.0,
    )


def client() -> httpx.AsyncClient:
    """The process's pooled client for the running event loop.

    httpx clients are bound to the loop that opened their connections; tests and
    async_to_sync may run several loops, so there is one client per live loop.
    """
    loop = asyncio.get_running_loop()
    found = _clients.get(loop)
    if found is None or found.is_closed:
        found = httpx.AsyncClient(
            timeout=timeouts(),
            transport=LeanTransport(max_idle_per_origin=50, keepalive_expiry=30),
            mounts=_proxy_mounts(),
            follow_redirects=False,
        )
        found._cookies = _NoCookieJar()  # httpx reads the jar through `client.cookies` by name
        _clients[loop] = found
    return found


class _NoCookieJar(httpx.Cookies):
    """Upstream cookies are neither kept nor sent back.

    One pooled client serves every team's providers: a jar would carry a cookie that a load
    balancer or CDN in front of an API set on one team's request into another team's
    requests to the same host. The APIs themselves authenticate by header. (It also saves
    the stdlib CookieJar's work on every response, on the way to the first chunk.)
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


def _proxy_mounts() -> dict[str, httpx.AsyncBaseTransport | None]:
    """HTTP(S)_PROXY, ALL_PROXY and NO_PROXY, read as httpx reads them (it ignores them
    for a client given its own transport): a proxied origin goes through httpx's proxy
    transport, an exempt one (None) through the lean transport."""
    from httpx._utils import get_environment_proxies  # httpx is pinned; its client uses the same

    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=30)
    return {pattern: None if url is None else httpx.AsyncHTTPTransport(proxy=url, limits=limits)
            for pattern, url in get_environment_proxies().items()}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if value:
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _upstream_message(body: bytes) -> tuple[str, str | None, str | None]:
    """(message, code, param) from an OpenAI-shaped error body, or a readable snippet."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode(errors="replace").strip()
        if text.lstrip().lower().startswith(("<!doctype", "<html")):
            return "it answered with an HTML page, not the OpenAI API", None, None
        return text[:300], None, None
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or orjson.dumps(error).decode()[:300]
        return str(message), error.get("code") and str(error.get("code")), error.get("param")
    return str(error)[:300], None, None


def error_from_response(response: httpx.Response, body: bytes, *, provider: str) -> ProxyError:
    """Map an upstream error reply to what a person can do about it."""
    status = response.status_code
    detail, code, param = _upstream_message(body)
    # Some upstreams echo the key they were sent: show its hint instead.
    detail = redact(detail, secrets_in_headers(response.request.headers))
    if status == 401:
        return ProxyError(
            f"{provider} rejected the API key ({detail}). Check the key in Settings -> Providers.",
            code="invalid_api_key", status=401,
        )
    if status == 403:
        return ProxyError(f"{provider} refused access: {detail}", code="permission_denied", status=403)
    if status == 404:
        listing = response.request.url.path.rstrip("/").endswith("/models")
        if code == "model_not_found" or (not listing and re.search(r"\bmodel\b", detail, re.IGNORECASE)):
            return ProxyError(f"{provider} does not know that model: {detail}", code="model_not_found", status=404)
        return ProxyError(
            f"{provider} has no such endpoint ({response.request.url.path}): is the base URL right "
            f"(it usually ends in /v1)? {detail}",
            code="not_found", status=404,
        )
    if status == 429:
        wait = _retry_after(response)
        waited = f" It asked to wait {wait:g} s." if wait else ""
        return ProxyError(
            f"{provider} is rate limiting requests: {detail}.{waited} Try again later or lower the load.",
            code="rate_limited", status=429, retry_after=wait,
        )
    if status in (400, 413, 422):
        if code == "context_length_exceeded" or "context length" in detail.lower() or "maximum context" in detail.lower():
            return ProxyError(
                f"The prompt and output do not fit the model's context window: {detail}",
                code="context_length_exceeded", status=400, param=param or "messages",
            )
        return ProxyError(f"{provider} rejected the request: {detail}", code=code or "bad_request", status=400, param=param)
    if status >= 500:
        return ProxyError(
            f"{provider} failed with HTTP {status}: {detail}. The upstream server is having trouble; try again.",
            code="upstream_unavailable", status=502,
        )
    return ProxyError(f"{provider} answered HTTP {status}: {detail}", code="upstream_error", status=502)


def error_from_exception(exc: Exception, *, provider: str, url: str) -> ProxyError:
    if isinstance(exc, httpx.ConnectTimeout):
        return ProxyError(f"Timed out connecting to {provider} at {url}. Is the server up and reachable?",
                          code="timeout", status=504)
    if isinstance(exc, httpx.ReadTimeout):
        return ProxyError(
            f"{provider} stopped sending for more than {settings.UPSTREAM_READ_TIMEOUT:g} s; the request was given up.",
            code="timeout", status=504,
        )
    if isinstance(exc, httpx.TimeoutException):
        return ProxyError(f"{provider} timed out ({type(exc).__name__}).", code="timeout", status=504)
    if isinstance(exc, httpx.ConnectError):
        cause = exc.__context__ or exc.__cause__
        if isinstance(cause, ssl.SSLError) or "SSL" in str(exc) or "certificate" in str(exc).lower():
            return ProxyError(
                f"TLS failed talking to {provider} at {url}: {exc}. Check the URL's scheme (http/https) and the certificate.",
                code="tls_error", status=502,
            )
        if "Name or service not known" in str(exc) or "nodename nor servname" in str(exc) or "getaddrinfo" in str(exc):
            return ProxyError(f"Cannot resolve the host of {provider} ({url}). Check the base URL.",
                              code="dns_error", status=502)
        return ProxyError(f"Cannot connect to {provider} at {url}: {exc or 'connection refused'}. Is the server running?",
                          code="upstream_unavailable", status=502)
    if isinstance(exc, httpx.RemoteProtocolError):
        return ProxyError(f"{provider} closed the connection unexpectedly ({exc}).",
                          code="stream_interrupted", status=502)
    if isinstance(exc, httpx.HTTPError):
        return ProxyError(f"HTTP error talking to {provider}: {exc}", code="upstream_error", status=502)
    raise exc


async def _backoff(attempt: int, wait: float | None) -> None:
    delay = settings.UPSTREAM_RETRY_BACKOFF * (2**attempt)
    if wait is not None:
        delay = min(max(wait, 0.0), settings.UPSTREAM_MAX_RETRY_AFTER)
    await asyncio.sleep(delay)


@asynccontextmanager
async def open_response(
    method: str,
    url: str,
    *,
    provider: str,
    headers: dict[str, str],
    params: dict[str, str] | None = None,
    json: Any = None,
    files: Any = None,
    data: Any = None,
) -> AsyncIterator[httpx.Response]:
    """Send a request, retrying transient failures, and yield a 2xx response to read.

    The body is not read here, so streaming callers read it chunk by chunk; retries only
    happen before the response is yielded. A non-2xx reply becomes a ProxyError.
    """
    http = client()
    content = orjson.dumps(json) if json is not None else None
    if content is not None:
        headers = {**headers, "content-type": "application/json"}
    attempts = settings.UPSTREAM_MAX_RETRIES + 1
    for attempt in range(attempts):
        last = attempt == attempts - 1
        try:
            request = http.build_request(method, url, headers=headers, params=params, content=content, files=files, data=data)
        except (UnicodeEncodeError, ValueError, httpx.InvalidURL) as exc:
            # A header value or URL that cannot go on the wire (e.g. non-ASCII): the
            # provider's settings are wrong, which is not a server error.
            raise ProxyError(
                f"The request to {provider} cannot be sent: {type(exc).__name__}: "
                f"{redact(str(exc), secrets_in_headers(headers))}. Check its base URL and extra headers in Settings -> Providers.",
                code="bad_provider_settings", status=400,
            ) from exc
        try:
            response = await http.send(request, stream=True)
        except httpx.ConnectError as exc:
            if last:
                raise error_from_exception(exc, provider=provider, url=url) from exc
            logger.warning("connect to %s failed (attempt %d): %s", provider, attempt + 1, exc)
            await _backoff(attempt, None)
            continue
        except httpx.HTTPError as exc:
            raise error_from_exception(exc, provider=provider, url=url) from exc
        if response.status_code < 400:
            try:
                yield response
            finally:
                await response.aclose()
            return
        try:
            body = await response.aread()
        except httpx.HTTPError:
            body = b""
        finally:
            await response.aclose()
        if response.status_code in RETRY_STATUSES and not last:
            wait = _retry_after(response) if response.status_code == 429 else None
            if wait is not None and wait > settings.UPSTREAM_MAX_RETRY_AFTER:
                raise error_from_response(response, body, provider=provider)
            logger.warning("%s answered %d (attempt %d); retrying", provider, response.status_code, attempt + 1)
            await _backoff(attempt, wait)
            continue
        raise error_from_response(response, body, provider=provider)


async def request_json(method: str, url: str, *, provider: str, headers: dict[str, str], **kwargs) -> Any:
    """A whole JSON reply (non-streaming calls)."""
    async with open_response(method, url, provider=provider, headers=headers, **kwargs) as response:
        try:
            body = await response.aread()
        except httpx.HTTPError as exc:
            raise error_from_exception(exc, provider=provider, url=url) from exc
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        snippet, _, _ = _upstream_message(body)
        snippet = redact(snippet, secrets_in_headers(headers))
        raise ProxyError(
            f"{provider} did not answer with JSON ({snippet}). Is the base URL an OpenAI-compatible API (…/v1)?",
            code="bad_response", status=502,
        ) from None


async def request_bytes(method: str, url: str, *, provider: str, headers: dict[str, str], **kwargs) -> tuple[bytes, str]:
    """A whole binary reply (audio) and its content type."""
    async with open_response(method, url, provider=provider, headers=headers, **kwargs) as response:
        try:
            body = await response.aread()
        except httpx.HTTPError as exc:
            raise error_from_exception(exc, provider=provider, url=url) from exc
        return body, response.headers.get("content-type", "application/octet-stream")
