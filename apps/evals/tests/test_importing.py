"""Importing test cases: CSV, JSONL and pasted rows, with errors that say what to fix."""
from __future__ import annotations

import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.evals import selectors
from apps.evals.importing import ImportError_, parse_csv, parse_jsonl, parse_paste, parse_upload
from apps.evals.models import TestRow
from apps.evals.services import rows_import, suite_create

pytestmark = pytest.mark.django_db


def _upload(content: bytes, name: str):
    file = io.BytesIO(content)
    file.name = name
    return file


def test_csv_with_the_suite_columns_imports_rows_and_extra_columns():
    parsed = parse_upload(b"city,expected\nParis,France\nRome,Italy\n", filename="cases.csv", required=["city"])
    assert parsed.columns == ["city", "expected"]
    assert parsed.rows == [{"city": "Paris", "expected": "France"}, {"city": "Rome", "expected": "Italy"}]


def test_csv_missing_a_column_names_it():
    with pytest.raises(ImportError_) as info:
        parse_upload(b"town,country\nParis,France\n", filename="cases.csv", required=["city", "country"])
    message = info.value.message
    assert "no column 'city'" in message and "'town', 'country'" in message and "cases.csv" in message


def test_csv_that_is_not_utf8_names_the_byte_and_line():
    raw = "city\nParis\nMontréal\n".encode("latin-1")
    with pytest.raises(ImportError_) as info:
        parse_upload(raw, filename="cases.csv", required=["city"])
    message = info.value.message
    assert "not UTF-8" in message and "0xe9" in message and "line 3" in message and "CSV UTF-8" in message


def test_utf8_with_bom_from_excel_is_read():
    parsed = parse_upload("city\nMontréal\n".encode("utf-8-sig"), filename="cases.csv", required=["city"])
    assert parsed.rows == [{"city": "Montréal"}]


@pytest.mark.parametrize("raw", [b"", b"   \n\n"])
def test_empty_file_is_refused(raw):
    with pytest.raises(ImportError_) as info:
        parse_upload(raw, filename="cases.csv", required=["city"])
    assert "is empty" in info.value.message


def test_csv_header_without_rows_and_too_many_values_are_named():
    with pytest.raises(ImportError_, match="has a header but no rows"):
        parse_csv("city,country\n", required=["city"])
    with pytest.raises(ImportError_, match=r"line 3: 3 values but the header has 2 columns"):
        parse_csv("city,country\nParis,France\nRome,Italy,extra\n", required=["city"], delimiter=",")


def test_malformed_jsonl_names_the_line():
    text = '{"city": "Paris"}\n\n{"city": "Rome",}\n'
    with pytest.raises(ImportError_) as info:
        parse_jsonl(text, required=["city"])
    assert "line 3 is not valid JSON" in info.value.message and "one JSON object" in info.value.message


def test_jsonl_line_that_is_not_an_object_or_lacks_a_variable():
    with pytest.raises(ImportError_, match="line 2 is a list, not an object"):
        parse_jsonl('{"city": "Paris"}\n["Rome"]\n', required=["city"])
    with pytest.raises(ImportError_, match="line 2 has no 'city'"):
        parse_jsonl('{"city": "Paris"}\n{"town": "Rome"}\n', required=["city"])


def test_jsonl_values_that_are_not_strings_become_json_text():
    parsed = parse_jsonl('{"city": "Paris", "n": 3, "tags": ["a"]}\n', required=["city"])
    assert parsed.rows == [{"city": "Paris", "n": "3", "tags": '["a"]'}]


def test_pasted_spreadsheet_rows_fill_columns_in_order_or_use_a_header():
    parsed = parse_paste("Paris\tFrance\nRome\tItaly\n", columns=["city", "country"])
    assert parsed.rows == [{"city": "Paris", "country": "France"}, {"city": "Rome", "country": "Italy"}]
    parsed = parse_paste("country\tcity\nFrance\tParis\n", columns=["city", "country"])
    assert parsed.rows == [{"country": "France", "city": "Paris"}]
    with pytest.raises(ImportError_, match="Pasted line 1 has 3 values but the suite has 2 columns"):
        parse_paste("a\tb\tc\n", columns=["city", "country"])


@pytest.mark.django_db(transaction=True)  # the page lists models from a DB thread
def test_ten_thousand_rows_import_in_bulk_and_the_table_is_paged(team, owner, owner_client):
    suite = suite_create(team=team, user=owner, name="Big", columns=["city"])
    raw = ("city,expected\n" + "".join(f"City {i},{i}\n" for i in range(10_000))).encode()
    with CaptureQueriesContext(connection) as imported:
        response = owner_client.post(reverse("evals:suite_import", args=[suite.pk]), {"file": _upload(raw, "big.csv")})
    assert response.status_code == 302
    assert TestRow.objects.filter(suite=suite).count() == 10_000
    inserts = [q for q in imported.captured_queries if q["sql"].startswith("INSERT") and "evals_testrow" in q["sql"]]
    assert 0 < len(inserts) <= 50  # bulk_create (batches of 1,000, split further by SQLite), not 10,000 INSERTs
    suite.refresh_from_db()
    assert suite.columns == ["city", "expected"]
    # One page of the table: a bounded query (LIMIT), 50 rows, never the whole table.
    with CaptureQueriesContext(connection) as paged:
        page = selectors.suite_rows_page(suite=suite, page=3)
        rows = list(page)
    assert len(rows) == 50 and rows[0].values == {"city": "City 100", "expected": "100"}
    row_queries = [q["sql"] for q in paged.captured_queries if "evals_testrow" in q["sql"] and "COUNT" not in q["sql"]]
    assert len(row_queries) == 1 and "LIMIT 50" in row_queries[0]
    html = owner_client.get(reverse("evals:suite", args=[suite.pk]), {"page": 200}).content.decode()
    assert html.count('class="ev-row') == 50 and "City 9999" in html and "City 9949" not in html
    assert "Page 200 of 200" in html and "10000 rows" in html


@pytest.mark.django_db(transaction=True)
def test_import_errors_are_shown_on_the_page_and_nothing_is_added(team, owner, owner_client):
    suite = suite_create(team=team, user=owner, name="S", columns=["city"])
    url = reverse("evals:suite_import", args=[suite.pk])
    response = owner_client.post(url, {"file": _upload(b'{"city": "Paris"}\n{oops}\n', "cases.jsonl")})
    assert response.status_code == 400
    assert "line 2 is not valid JSON" in response.content.decode()
    response = owner_client.post(url, {"file": _upload(b"town\nParis\n", "cases.csv")})
    assert response.status_code == 400 and "no column &#x27;city&#x27;" in response.content.decode()
    assert not TestRow.objects.exists()


def test_replace_starts_the_numbering_again(team, owner):
    from apps.evals.importing import Parsed

    suite = suite_create(team=team, user=owner, name="S", columns=["city"])
    rows_import(suite=suite, parsed=Parsed(["city"], [{"city": "a"}, {"city": "b"}]))
    rows_import(suite=suite, parsed=Parsed(["city"], [{"city": "c"}]))
    assert list(suite.rows.values_list("position", flat=True)) == [1, 2, 3]
    rows_import(suite=suite, parsed=Parsed(["city"], [{"city": "d"}]), replace=True)
    assert list(suite.rows.values_list("position", "values")) == [(1, {"city": "d"})]


@pytest.mark.django_db(transaction=True)
def test_rows_are_added_edited_and_deleted_in_the_page(team, owner, owner_client):
    from apps.evals.importing import Parsed

    suite = suite_create(team=team, user=owner, name="S", columns=["city", "expected"])
    rows_import(suite=suite, parsed=Parsed(["city"], [{"city": f"c{i}"} for i in range(60)]))
    response = owner_client.post(reverse("evals:row_add", args=[suite.pk]), {"v:city": "Oslo", "v:expected": "Oslo"})
    assert response.status_code == 302 and response["Location"].endswith("?page=2#rows")  # the page the new row is on
    row = TestRow.objects.get(position=61)
    assert row.values == {"city": "Oslo", "expected": "Oslo"}
    html = owner_client.post(reverse("evals:row_update", args=[row.pk]), {"v:expected": "Oslo, Norway"}, HTTP_HX_REQUEST="true").content.decode()
    assert html.startswith(f'<tr id="row-{row.pk}"') and "Oslo, Norway" in html and "ev-saved" in html
    row.refresh_from_db()
    assert row.values == {"city": "Oslo", "expected": "Oslo, Norway"}
    # A row imported without an 'expected' value shows that it has none.
    first = TestRow.objects.get(position=1)
    page = owner_client.get(reverse("evals:suite", args=[suite.pk])).content.decode()
    assert 'aria-label="expected of row 1" class="ev-input ev-missing" placeholder="no value"' in page
    assert owner_client.post(reverse("evals:row_delete", args=[first.pk]), HTTP_HX_REQUEST="true").content == b""
    assert not TestRow.objects.filter(pk=first.pk).exists()
