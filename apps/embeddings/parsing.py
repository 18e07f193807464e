"""Texts to embed from what people paste or upload: one per line, .txt, .csv or .jsonl.

Every problem is reported with the line it is on, so the fix is obvious.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

TEXT_KEYS = ("text", "input", "content", "sentence", "document")
LABEL_KEYS = ("label", "category", "class", "tag")


@dataclass
class ParsedTexts:
    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def add(self, text: str, label: str = "") -> None:
        text = text.strip()
        if text:
            self.texts.append(text)
            self.labels.append(label.strip())

    def finish(self) -> ParsedTexts:
        if not any(self.labels):
            self.labels = []
        return self


def texts_from_lines(raw: str) -> ParsedTexts:
    parsed = ParsedTexts()
    for line in raw.splitlines():
        parsed.add(line)
    return parsed.finish()


def texts_from_upload(name: str, content: bytes) -> ParsedTexts:
    try:
        raw = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{name} is not UTF-8 text (byte {exc.start} cannot be read). Save it as UTF-8 and upload again.") from None
    lower = name.lower()
    if lower.endswith(".jsonl") or lower.endswith(".ndjson"):
        return _jsonl(name, raw)
    if lower.endswith(".csv") or lower.endswith(".tsv"):
        return _csv(name, raw, delimiter="\t" if lower.endswith(".tsv") else ",")
    if lower.endswith(".txt") or "." not in lower:
        return texts_from_lines(raw)
    raise ValidationError(f"{name}: upload a .txt (one text per line), .csv (a text column, optional label) or .jsonl file.")


def _pick(keys: dict[str, str], wanted: tuple[str, ...]) -> str | None:
    for key in wanted:
        if key in keys:
            return keys[key]
    return None


def _csv(name: str, raw: str, *, delimiter: str) -> ParsedTexts:
    rows = list(csv.reader(io.StringIO(raw), delimiter=delimiter))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    parsed = ParsedTexts()
    if not rows:
        return parsed
    header = {cell.strip().lower(): i for i, cell in enumerate(rows[0])}
    text_col = _pick(header, TEXT_KEYS)
    label_col = _pick(header, LABEL_KEYS)
    if text_col is not None:
        body = rows[1:]
    elif len(rows[0]) > 1 and any(k in header for k in LABEL_KEYS):
        raise ValidationError(f"{name} has a header but no text column: name the column holding the texts 'text'.")
    else:
        text_col, label_col, body = 0, (1 if len(rows[0]) > 1 else None), rows
    for line_no, row in enumerate(body, start=2 if body is not rows else 1):
        if text_col >= len(row):
            raise ValidationError(f"{name}, line {line_no}: no value in the text column.")
        label = row[label_col] if label_col is not None and label_col < len(row) else ""
        parsed.add(row[text_col], label)
    return parsed.finish()


def _jsonl(name: str, raw: str) -> ParsedTexts:
    parsed = ParsedTexts()
    for line_no, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{name}, line {line_no} is not valid JSON ({exc.msg}).") from None
        if isinstance(item, str):
            parsed.add(item)
            continue
        if not isinstance(item, dict):
            raise ValidationError(f'{name}, line {line_no}: expected an object like {{"text": "...", "label": "..."}}.')
        keys = {k.lower(): k for k in item}
        text_key = _pick(keys, TEXT_KEYS)
        if text_key is None or not isinstance(item[text_key], str):
            raise ValidationError(f'{name}, line {line_no}: no "text" field (a string) in this object.')
        label_key = _pick(keys, LABEL_KEYS)
        parsed.add(item[text_key], str(item[label_key]) if label_key and item[label_key] is not None else "")
    return parsed.finish()
