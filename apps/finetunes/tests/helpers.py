"""Small builders for fine-tuning tests."""
from __future__ import annotations

import json

from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

QA = [
    ("What is the capital of France?", "Paris."), ("What colour is the sky?", "Blue."),
    ("How many legs does a cat have?", "Four."), ("What is 2+2?", "Four."),
    ("Who wrote Hamlet?", "Shakespeare."), ("What is ice made of?", "Water."),
    ("What do bees make?", "Honey."), ("Where is Tokyo?", "Japan."),
    ("What is the largest planet?", "Jupiter."), ("What gas do plants breathe in?", "Carbon dioxide."),
]


def chat_lines(n: int = 10, *, answer_suffix: str = "") -> bytes:
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a + answer_suffix}]}
            for q, a in (QA * 10)[:n]]
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def upload(content: bytes, name: str = "train.jsonl") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/jsonl")


def stored_file(team, user, content: bytes | None = None, *, name: str = "train.jsonl", model: str = "gpt-4o-mini-2024-07-18"):
    from apps.finetunes.services import training_file_create

    row, report = training_file_create(team=team, user=user, upload=ContentFile(content or chat_lines(), name=name),
                                       filename=name, model=model)
    assert row is not None, [str(e) for e in report.errors]
    return row
