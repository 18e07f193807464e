"""One error type for everything that can go wrong between Playground and a model.

Every failure (upstream HTTP, the local engine, bad input the provider rejects) becomes a
ProxyError whose `message` tells a person what to do about it. Views show `message`; /v1
returns `as_openai()` with `status`.
"""
from __future__ import annotations


class ProxyError(Exception):
    """A failure a person can act on.

    code:    a stable machine name (invalid_api_key, rate_limited, context_length_exceeded,
             model_not_found, upstream_unavailable, timeout, bad_request, not_supported,
             stream_interrupted, bad_response, permission_denied, cancelled)
    status:  the HTTP status /v1 answers with
    param:   the request parameter at fault, when there is one
    retry_after: seconds the upstream asked us to wait (429)
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "upstream_error",
        status: int = 502,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.param = param
        self.retry_after = retry_after

    @property
    def error_type(self) -> str:
        if self.status in (400, 404, 413, 422):
            return "invalid_request_error"
        if self.status == 401:
            return "authentication_error"
        if self.status == 403:
            return "permission_error"
        if self.status == 429:
            return "rate_limit_error"
        return "api_error"

    def as_openai(self) -> dict:
        """The error in OpenAI's JSON shape."""
        return {"error": {"message": self.message, "type": self.error_type, "param": self.param, "code": self.code}}

    def __repr__(self) -> str:
        return f"ProxyError({self.code!r}, {self.message!r})"


def bad_request(message: str, *, param: str | None = None, code: str = "bad_request") -> ProxyError:
    return ProxyError(message, code=code, status=400, param=param)


def not_supported(message: str, *, param: str | None = None) -> ProxyError:
    return ProxyError(message, code="not_supported", status=400, param=param)
