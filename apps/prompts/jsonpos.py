"""Where each value of a JSON document starts, so an import error can name its line.

`json.loads` says where the syntax breaks but not where a well-formed yet wrong value sits
("versions[2].messages[0].role"). `positions()` walks an already valid document once and
maps every path to the offset of its value; `line_col()` turns an offset into line/column.
"""
from __future__ import annotations

import json
import re
from json.decoder import scanstring
from typing import Any

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()

Path = tuple[Any, ...]


def positions(text: str) -> dict[Path, int]:
    """{path: offset} for every value in `text`, which must be valid JSON."""
    found: dict[Path, int] = {}

    def skip(index: int) -> int:
        return _WS.match(text, index).end()

    def value(index: int, path: Path) -> int:
        index = skip(index)
        found[path] = index
        char = text[index:index + 1]
        if char == "{":
            index = skip(index + 1)
            if text[index] == "}":
                return index + 1
            while True:
                key, index = scanstring(text, skip(index) + 1)
                index = skip(index) + 1  # the colon
                index = skip(value(index, (*path, key)))
                if text[index] == "}":
                    return index + 1
                index += 1  # the comma
        if char == "[":
            index = skip(index + 1)
            if text[index] == "]":
                return index + 1
            n = 0
            while True:
                index = skip(value(index, (*path, n)))
                n += 1
                if text[index] == "]":
                    return index + 1
                index += 1
        _, end = _DECODER.raw_decode(text, index)
        return end

    value(0, ())
    return found


def line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def path_label(path: Path) -> str:
    """("versions", 2, "messages", 0, "role") -> "versions[2].messages[0].role"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(the file)"
