"""Download names chosen by people (`?name=`) for every file Playground hands out.

Files are always read from storage by the path stored on the row, never from a name in
the request; the name only goes into Content-Disposition. It is still checked, so that a
name like "../../etc/passwd" is refused with a message instead of being passed on to a
browser (or to a proxy that might write it to disk).
"""
from __future__ import annotations

import re

from django.http import HttpResponse

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()-]{0,119}$")


class UnsafeName(ValueError):
    pass


def download_name(requested: str | None, *, default: str, extension: str) -> str:
    """A plain file name with `extension`, or UnsafeName saying what is wrong."""
    name = (requested or "").strip() or default
    if "/" in name or "\\" in name or ".." in name or "\x00" in name:
        raise UnsafeName(f"The download name {name!r} contains a path; give a plain file name such as '{default}.{extension}'.")
    if not SAFE_NAME.match(name):
        raise UnsafeName(
            f"The download name {name!r} is not allowed: use letters, digits, spaces, '.', '_', '-', '(' or ')' (at most 120)."
        )
    if not name.lower().endswith("." + extension):
        name = f"{name}.{extension}"
    return name


def attachment(content: bytes, *, name: str, content_type: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def refused(exc: UnsafeName) -> HttpResponse:
    return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
