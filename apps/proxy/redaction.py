"""Keeping provider API keys out of what Playground shows, logs and reports.

- `redact(text, secrets)` replaces every secret in a message with its hint (sk-...abcd),
  for upstream error messages that echo the key back (some proxies do).
- `SecretsExceptionReporterFilter` hides secrets in Django's exception reports (the DEBUG
  500 page, error e-mails): any frame variable or POST field named like a secret, and
  request headers held in a variable, are cleansed in every frame, not only in
  functions marked @sensitive_variables (async generators cannot be marked).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from django.views.debug import SafeExceptionReporterFilter

from apps.proxy.crypto import hint

# Header and parameter names whose values are credentials.
SECRET_NAME = re.compile(r"api[-_]?key|auth|token|secret|pass|signature|cookie|credential", re.IGNORECASE)
MIN_SECRET = 8  # shorter values would redact ordinary words


def secrets_in_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[str]:
    """The credential values in a set of request headers (the key after 'Bearer ')."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    found = []
    for name, value in items:
        if not SECRET_NAME.search(str(name)):
            continue
        value = str(value)
        scheme, _, rest = value.partition(" ")
        if rest and scheme.lower() in ("bearer", "basic", "token"):
            value = rest
        if len(value.strip()) >= MIN_SECRET:
            found.append(value.strip())
    return found


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET}, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, hint(secret))
    return text


class SecretsExceptionReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|CREDENTIAL|HEADERS", flags=re.IGNORECASE
    )

    def get_post_parameters(self, request):
        params = super().get_post_parameters(request)
        if request is None or not params:
            return params
        cleansed = params.copy()
        for name in params:
            if self.hidden_settings.search(name):
                cleansed[name] = self.cleansed_substitute
        return cleansed

    def get_traceback_frame_variables(self, request, tb_frame):
        variables = super().get_traceback_frame_variables(request, tb_frame)
        return [(name, self.cleanse_setting(name, value)) for name, value in variables]
