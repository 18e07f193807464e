"""Rows of a test suite from a CSV, a JSONL file, or text pasted from a spreadsheet.

Every error names the line and says what to fix: a missing column, a file that is not
UTF-8 (which byte, which line), a line that is not a JSON object, an empty file. Nothing
is half-imported: the file is parsed completely before a single row is written.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

MAX_ROWS = 50_000
MAX_BYTES = 20 * 1024 * 1024


class ImportError_(ValueError):
    """What is wrong with the file, for the person who chose it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Parsed:
    columns: list[str]  # in file order
    rows: list[dict[str, str]]


def decode(raw: bytes, *, filename: str = "the file") -> str:
    if not raw.strip():
        raise ImportError_(f"{filename} is empty: it needs a header line and at least one row.")
    if len(raw) > MAX_BYTES:
        raise ImportError_(f"{filename} is {len(raw) / 1024 / 1024:.1f} MB; import at most {MAX_BYTES // 1024 // 1024} MB at a time.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = raw[exc.start]
        guess = " (it looks like Latin-1 / Windows-1252, e.g. from Excel's plain 'CSV')" if 0x80 <= byte <= 0xFF else ""
        raise ImportError_(
            f"{filename} is not UTF-8: byte 0x{byte:02x} on line {line}, column {column} cannot be read{guess}. "
            "Save it as UTF-8 (in Excel: 'CSV UTF-8') and import it again."
        ) from exc


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _check_columns(found: list[str], required: list[str], *, where: str) -> None:
    missing = [name for name in required if name not in found]
    if missing:
        names = ", ".join(f"'{m}'" for m in missing)
        has = ", ".join(f"'{f}'" for f in found) or "none"
        raise ImportError_(
            f"{where} has no {'column' if len(missing) == 1 else 'columns'} {names} (its columns are {has}). "
            f"Add {'it' if len(missing) == 1 else 'them'} to the header line, or rename a column to match the prompt's variables."
        )


def parse_csv(text: str, *, required: list[str], filename: str = "The CSV", delimiter: str | None = None) -> Parsed:
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise ImportError_(f"{filename} is empty: it needs a header line and at least one row.")
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise ImportError_(f"{filename}, line 1: {exc}") from exc
    header = [h.strip() for h in header]
    if not any(header):
        raise ImportError_(f"{filename}: line 1 should be a header naming the columns (e.g. city,country) but it is empty.")
    blank = [i + 1 for i, h in enumerate(header) if not h]
    if blank:
        raise ImportError_(f"{filename}: column {blank[0]} of the header (line 1) has no name. Name every column.")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise ImportError_(f"{filename}: the header (line 1) names {', '.join(repr(d) for d in dupes)} twice. Column names must be unique.")
    _check_columns(header, required, where=filename)
    rows: list[dict[str, str]] = []
    try:
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            if len(record) > len(header):
                raise ImportError_(
                    f"{filename}, line {reader.line_num}: {len(record)} values but the header has {len(header)} columns. "
                    "Quote values that contain the separator (\"a, b\")."
                )
            record = record + [""] * (len(header) - len(record))
            rows.append(dict(zip(header, record)))
            if len(rows) > MAX_ROWS:
                raise ImportError_(f"{filename} has more than {MAX_ROWS:,} rows; split it into smaller files.")
    except csv.Error as exc:
        raise ImportError_(f"{filename}, line {reader.line_num}: {exc}. Check the quotes on that line.") from exc
    if not rows:
        raise ImportError_(f"{filename} has a header but no rows: add one line of values per test case.")
    return Parsed(columns=header, rows=rows)


def parse_jsonl(text: str, *, required: list[str], filename: str = "The JSONL file") -> Parsed:
    columns: dict[str, None] = {}
    rows: list[dict[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ImportError_(
                f"{filename}, line {number} is not valid JSON: {exc.msg} (column {exc.colno}). "
                'Each line must be one JSON object, e.g. {"city": "Paris"}.'
            ) from exc
        if not isinstance(data, dict):
            kind = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false"}.get(type(data), "not an object")
            raise ImportError_(f"{filename}, line {number} is {kind}, not an object: write it as {{\"column\": \"value\", ...}}.")
        missing = [name for name in required if name not in data]
        if missing:
            raise ImportError_(
                f"{filename}, line {number} has no {', '.join(repr(m) for m in missing)}: every line needs a value for "
                f"{'this variable' if len(missing) == 1 else 'these variables'} (an empty string is fine)."
            )
        for key in data:
            columns.setdefault(str(key), None)
        rows.append({str(k): _text(v) for k, v in data.items()})
        if len(rows) > MAX_ROWS:
            raise ImportError_(f"{filename} has more than {MAX_ROWS:,} rows; split it into smaller files.")
    if not rows:
        raise ImportError_(f"{filename} is empty: write one JSON object per line.")
    return Parsed(columns=list(columns), rows=rows)


def parse_upload(raw: bytes, *, filename: str, required: list[str]) -> Parsed:
    label = f"“{filename}”" if filename else "The file"
    text = decode(raw, filename=label)
    lower = (filename or "").lower()
    if lower.endswith((".jsonl", ".ndjson", ".json")) or (not lower.endswith((".csv", ".tsv", ".txt")) and text.lstrip().startswith("{")):
        return parse_jsonl(text, required=required, filename=label)
    return parse_csv(text, required=required, filename=label, delimiter="\t" if lower.endswith(".tsv") else None)


def parse_paste(text: str, *, columns: list[str]) -> Parsed:
    """Rows pasted from a spreadsheet (tab-separated) or typed as CSV.

    A first line naming the columns is a header; otherwise values fill the suite's
    columns in order.
    """
    lines = [line for line in (text or "").splitlines() if line.strip()]
    if not lines:
        raise ImportError_("Nothing to add: paste rows copied from a spreadsheet, one row per line.")
    delimiter = "\t" if "\t" in lines[0] else ","
    first = [cell.strip() for cell in next(csv.reader([lines[0]], delimiter=delimiter))]
    if columns and set(first) >= set(columns) or not columns:
        return parse_csv("\n".join(lines), required=columns, filename="The pasted text", delimiter=delimiter)
    rows = []
    for number, record in enumerate(csv.reader(lines, delimiter=delimiter), start=1):
        if len(record) > len(columns):
            raise ImportError_(
                f"Pasted line {number} has {len(record)} values but the suite has {len(columns)} columns "
                f"({', '.join(columns)}). Add the missing columns first, or paste with a header line."
            )
        record = record + [""] * (len(columns) - len(record))
        rows.append(dict(zip(columns, record)))
    return Parsed(columns=list(columns), rows=rows)
