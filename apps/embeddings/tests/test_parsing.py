from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.embeddings.parsing import texts_from_lines, texts_from_upload


def test_lines_skip_blanks_and_trim():
    parsed = texts_from_lines("  first \n\n second\n   \n")
    assert parsed.texts == ["first", "second"]
    assert parsed.labels == []


def test_csv_with_text_and_label_columns():
    parsed = texts_from_upload("data.csv", b"label,text\nfruit,apple\nanimal,\"a cat, sleeping\"\n")
    assert parsed.texts == ["apple", "a cat, sleeping"]
    assert parsed.labels == ["fruit", "animal"]


def test_csv_without_header_takes_first_column_and_second_as_label():
    parsed = texts_from_upload("data.csv", b"apple,fruit\ncat,animal\n")
    assert parsed.texts == ["apple", "cat"]
    assert parsed.labels == ["fruit", "animal"]


def test_jsonl_objects_and_strings():
    parsed = texts_from_upload("d.jsonl", b'{"text": "apple", "label": "fruit"}\n"plain string"\n\n{"input": "cat"}\n')
    assert parsed.texts == ["apple", "plain string", "cat"]
    assert parsed.labels == ["fruit", "", ""]


def test_jsonl_bad_line_is_named():
    with pytest.raises(ValidationError) as info:
        texts_from_upload("d.jsonl", b'{"text": "ok"}\n{"text": broken}\n')
    assert "line 2" in info.value.messages[0]


def test_jsonl_object_without_text_is_named():
    with pytest.raises(ValidationError, match="line 1"):
        texts_from_upload("d.jsonl", b'{"label": "x"}\n')


def test_not_utf8_is_refused():
    with pytest.raises(ValidationError, match="not UTF-8"):
        texts_from_upload("d.txt", b"\xff\xfe\x00bad")


def test_unknown_extension_is_refused():
    with pytest.raises(ValidationError, match=r"\.txt"):
        texts_from_upload("d.pdf", b"%PDF-1.4")
