"""The import service: all rows or none, duplicates, encodings, formats, guessability."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from openpyxl import Workbook

from tests.factories import MerchantFactory, ProductFactory, UserFactory
from tests.vouchers.test_import_support import (
    available_stock,
    blind,
    fresh_codes,
    snapshot,
    stored_plaintexts,
    write_lines,
)
from vouchers import codeformat
from vouchers.codeformat import CodeFormat
from vouchers.exceptions import ImportRejected, InvalidBatchSettings
from vouchers.importfile import _EXPIRY_FORMAT
from vouchers.models import Batch, Code, CodeEvent
from vouchers.services.imports import REPORT_LIMIT, import_codes

pytestmark = pytest.mark.django_db


def run(product, path, **kwargs):
    return import_codes(product=product, file=path, filename=str(path), **kwargs)


# --- a clean file --------------------------------------------------------------------

def test_csv_with_header_serial_and_expiry_is_stored_sealed_with_counters_and_event(product, tmp_path):
    # given a CSV with a header, a serial column and an expiry column
    codes = fresh_codes(3)
    path = write_lines(tmp_path / "supplier.csv", [
        "code,serial,expiry",
        f"{codes[0]},SN-1,2031-01-31",
        f"{codes[1]},,2031-02-01T12:30:00+08:00",
        f"{codes[2]},SN-3,",
    ])
    user = UserFactory()
    # when
    result = run(product, path, created_by=user)
    # then
    assert (result.imported, result.skipped, result.report) == (3, 0, [])
    batch = Batch.objects.get()
    assert result.batch == batch
    assert (batch.source, batch.status, batch.size, batch.reference, batch.case_sensitive) == (
        "imported", "active", 3, "supplier.csv", False
    )
    assert stored_plaintexts(batch) == codes
    rows = list(Code.objects.filter(batch=batch).order_by("pk"))
    assert [bytes(r.blind_index) for r in rows] == [blind(c) for c in codes]
    assert [r.serial for r in rows] == ["SN-1", None, "SN-3"]
    assert [r.expires_at for r in rows] == [
        datetime(2031, 2, 1, tzinfo=UTC),  # a date: good through that day (server time zone UTC)
        datetime(2031, 2, 1, 4, 30, tzinfo=UTC),
        None,
    ]
    assert [r.last4 for r in rows] == [codeformat.normalise(c, case_sensitive=False)[-4:] for c in codes]
    assert {r.state for r in rows} == {"available"}
    for code, row in zip(codes, rows, strict=True):
        assert codeformat.normalise(code, case_sensitive=False).encode() not in bytes(row.ciphertext)
        assert code.encode() not in bytes(row.ciphertext)
    assert available_stock(batch) == 3
    event = CodeEvent.objects.get()
    assert (event.action, event.batch_id, event.actor, event.to_state) == (
        "batch_imported", batch.pk, f"user:{user.pk}", "available"
    )
    assert event.details == {
        "count": 3, "skipped": 0, "file_format": "csv", "encoding": "utf-8",
        "filename": "supplier.csv", "allow_weak_codes": False,
    }


def test_codes_are_normalised_and_the_display_form_is_what_is_sealed(product, tmp_path):
    # given codes with spaces, lower case and surrounding blanks, no header
    codes = fresh_codes(2)
    path = write_lines(tmp_path / "codes.csv", [f"  {codes[0].lower()}  ", codes[1].replace("-", " ")])
    # when
    result = run(product, path)
    # then: the blind index is of the canonical form, the customer gets the supplier's form
    assert result.imported == 2
    rows = list(Code.objects.order_by("pk"))
    assert [bytes(r.blind_index) for r in rows] == [blind(c) for c in codes]
    assert stored_plaintexts(result.batch) == [codes[0].lower(), codes[1].replace("-", " ")]


def test_reference_and_validity_window_are_kept(product, tmp_path):
    # given
    path = write_lines(tmp_path / "codes.txt", fresh_codes(1))
    start, end = timezone.now(), timezone.now() + timedelta(days=30)
    # when
    result = run(product, path, reference="PO-77", valid_from=start, valid_until=end)
    # then
    batch = Batch.objects.get(pk=result.batch.pk)
    assert (batch.reference, batch.valid_from, batch.valid_until) == ("PO-77", start, end)


# --- duplicates ------------------------------------------------------------------------

def test_duplicate_within_the_file_is_reported_with_both_lines_and_nothing_is_stored(product, tmp_path):
    # given line 5 repeats line 3 (other case and grouping: the same code once normalised)
    codes = fresh_codes(4)
    path = write_lines(tmp_path / "codes.csv", [
        "code", codes[0], codes[1], codes[2], codes[1].lower().replace("-", ""),
    ])
    before = snapshot()
    # when
    with pytest.raises(ImportRejected) as caught:
        run(product, path)
    # then
    assert caught.value.report == [(5, "duplicate of line 3")]
    assert caught.value.bad_rows == 1
    assert caught.value.detail == "1 bad row in the file. Nothing was imported."
    assert snapshot() == before


def test_code_already_stored_is_reported_and_nothing_more_is_stored(product, tmp_path):
    # given one code already imported
    codes = fresh_codes(3)
    run(product, write_lines(tmp_path / "first.txt", [codes[0]]))
    before = snapshot()
    path = write_lines(tmp_path / "second.txt", [codes[1], codes[0], codes[2]])
    # when
    with pytest.raises(ImportRejected) as caught:
        run(product, path)
    # then
    assert caught.value.report == [(2, "already stored")]
    assert caught.value.bad_rows == 1
    assert snapshot() == before


def test_code_stored_by_another_merchant_is_only_said_to_be_already_stored(product, tmp_path):
    # given another merchant's product holds the code
    codes = fresh_codes(2)
    other = ProductFactory(merchant=MerchantFactory())
    run(other, write_lines(tmp_path / "theirs.txt", [codes[0]]))
    before = snapshot()
    # when
    with pytest.raises(ImportRejected) as caught:
        run(product, write_lines(tmp_path / "mine.txt", [codes[1], codes[0]]))
    # then: no batch, merchant or product is named
    assert caught.value.report == [(2, "already stored")]
    assert snapshot() == before


def test_a_row_both_repeated_and_stored_is_reported_once_as_stored(product, tmp_path):
    # given
    codes = fresh_codes(2)
    run(product, write_lines(tmp_path / "first.txt", [codes[0]]))
    before = snapshot()
    # when
    with pytest.raises(ImportRejected) as caught:
        run(product, write_lines(tmp_path / "again.txt", [codes[0], codes[1], codes[0]]))
    # then
    assert caught.value.report == [(1, "already stored"), (3, "already stored")]
    assert caught.value.bad_rows == 2
    assert snapshot() == before


def test_case_sensitive_batch_keeps_codes_that_differ_only_by_case(product, tmp_path):
    # given two codes differing only by case
    code = CodeFormat(alphabet="abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789").random_body()
    path = write_lines(tmp_path / "codes.txt", [code, code.swapcase()])
    # when a case-insensitive import refuses them
    with pytest.raises(ImportRejected) as caught:
        run(product, path)
    assert caught.value.report == [(2, "duplicate of line 1")]
    # then a case-sensitive import keeps both
    result = run(product, path, case_sensitive=True)
    assert result.imported == 2
    assert result.batch.case_sensitive is True
    assert stored_plaintexts(result.batch) == [code, code.swapcase()]


# --- bad rows ----------------------------------------------------------------------------

def test_malformed_rows_are_each_reported_and_nothing_is_stored(product, tmp_path):
    # given a file with one good row and many kinds of bad rows
    codes = fresh_codes(9)
    path = write_lines(tmp_path / "bad.csv", [
        f"{codes[0]},SN-1,2031-01-01",          # 1 good
        "ab-c",                                  # 2 too short once normalised
        f"{codes[1]},SN-2,31/12/2031",           # 3 not ISO 8601
        f"{codes[2]},SN-3,2031-01-01,extra",     # 4 too many columns
        ",SN-5,2031-01-01",                      # 5 missing code
        f"{codes[3]},SN-6,2001-01-01",           # 6 expired already
        f"{codes[4]},{'S' * 65},",               # 7 serial too long
        f"{codes[5]}é,,",                        # 8 not ASCII
        "",                                      # 9 blank: skipped silently
        f'"{codes[6]},SN-10',                    # 10 quote not closed
        f"{codes[7]},SN\x07,",                   # 11 control character in the serial
        "X" * 65,                                # 12 too long
        f"{codes[8]},,2031-02-30",               # 13 no such date
    ])
    before = snapshot()
    # when
    with pytest.raises(ImportRejected) as caught:
        run(product, path)
    # then
    assert caught.value.report == [
        (2, "a code has at least 4 characters"),
        (3, _EXPIRY_FORMAT),
        (4, "too many columns: expected code, serial, expiry"),
        (5, "missing code"),
        (6, "expiry is in the past"),
        (7, "serial longer than 64 characters"),
        (8, "a code may contain only printable ASCII letters, digits and symbols"),
        (10, "a quoted cell is not closed on its line"),
        (11, "serial holds control characters"),
        (12, "a code has at most 64 characters"),
        (13, _EXPIRY_FORMAT),
    ]
    assert caught.value.bad_rows == 11
    assert caught.value.detail == "11 bad rows in the file. Nothing was imported."
    assert snapshot() == before


def test_bad_rows_and_duplicates_are_reported_together_in_line_order(product, tmp_path):
    # given
    codes = fresh_codes(3)
    run(product, write_lines(tmp_path / "first.txt", [codes[2]]))
    before = snapshot()
    path = write_lines(tmp_path / "mixed.csv", [codes[0], "bad", codes[0], codes[1], codes[2]])
    # when
    with pytest.raises(ImportRejected) as caught:
        run(product, path)
    # then
    assert caught.value.report == [
        (2, "a code has at least 4 characters"), (3, "duplicate of line 1"), (5, "already stored"),
    ]
    assert caught.value.bad_rows == 3
    assert snapshot() == before


def test_skip_invalid_keeps_valid_rows_and_reports_and_counts_the_skipped(product, tmp_path):
    # given bad rows, a duplicate within the file and a code already stored
    codes = fresh_codes(5)
    run(product, write_lines(tmp_path / "first.txt", [codes[4]]))
    path = write_lines(tmp_path / "mixed.csv", [
        "code,serial,expiry", f"{codes[0]},A", "bad", f"{codes[1]},B", f"{codes[0]},C",
        f"{codes[4]},D", f"{codes[2]},E", f"{codes[3]},F,2000-01-01",
    ])
    # when
    result = run(product, path, skip_invalid=True)
    # then: the first occurrence of a repeated code is kept
    assert result.imported == 3
    assert result.skipped == 4
    assert result.report == [
        (3, "a code has at least 4 characters"), (5, "duplicate of line 2"), (6, "already stored"),
        (8, "expiry is in the past"),
    ]
    assert stored_plaintexts(result.batch) == [codes[0], codes[1], codes[2]]
    assert list(Code.objects.filter(batch=result.batch).order_by("pk").values_list("serial", flat=True)) == [
        "A", "B", "E"
    ]
    assert result.batch.size == 3
    assert available_stock(result.batch) == 3
    event = CodeEvent.objects.filter(batch=result.batch).get()
    assert (event.details["count"], event.details["skipped"]) == (3, 4)


def test_skip_invalid_with_only_bad_rows_refuses_the_file(product, tmp_path):
    # given
    path = write_lines(tmp_path / "bad.txt", ["abc", "de"])
    before = snapshot()
    # when
    with pytest.raises(ImportRejected) as caught:
        run(product, path, skip_invalid=True)
    # then
    assert caught.value.report == [
        (1, "a code has at least 4 characters"), (2, "a code has at least 4 characters")
    ]
    assert caught.value.bad_rows == 2
    assert snapshot() == before


def test_report_is_capped_but_the_count_is_true(product, tmp_path):
    # given more bad rows than the report keeps
    path = write_lines(tmp_path / "bad.txt", ["abc"] * (REPORT_LIMIT + 5))
    before = snapshot()
    # when
    with pytest.raises(ImportRejected) as caught:
        run(product, path)
    # then
    assert len(caught.value.report) == REPORT_LIMIT
    assert caught.value.report[-1] == (REPORT_LIMIT, "a code has at least 4 characters")
    assert caught.value.bad_rows == REPORT_LIMIT + 5
    assert snapshot() == before


def test_empty_file_is_refused(product, tmp_path):
    # given
    path = write_lines(tmp_path / "empty.csv", ["code,serial", "", "  "])
    before = snapshot()
    # when
    with pytest.raises(ImportRejected) as caught:
        run(product, path)
    # then
    assert (caught.value.report, caught.value.bad_rows) == ([], 0)
    assert caught.value.detail == "The file holds no code that can be imported. Nothing was imported."
    assert snapshot() == before


def test_unknown_header_column_refuses_the_file(product, tmp_path):
    # given a header with a column that might hold the real secret
    path = write_lines(tmp_path / "codes.csv", ["code,pin", "AAAA-BBBB-CCCC-DDDD,1234"])
    before = snapshot()
    # when
    with pytest.raises(ImportRejected) as caught:
        run(product, path)
    # then
    assert caught.value.report == [
        (1, "header column 2 is not one of code, serial, expiry (or it is repeated)")
    ]
    assert snapshot() == before


def test_data_in_a_column_without_header_is_a_bad_row(product, tmp_path):
    # given
    codes = fresh_codes(2)
    path = write_lines(tmp_path / "codes.csv", ["code", codes[0], f"{codes[1]},surprise"])
    before = snapshot()
    # when
    with pytest.raises(ImportRejected) as caught:
        run(product, path)
    # then
    assert caught.value.report == [(3, "column 2 has no header")]
    assert snapshot() == before


def test_header_columns_may_come_in_any_order(product, tmp_path):
    # given
    codes = fresh_codes(1)
    path = write_lines(tmp_path / "codes.csv", ["Expiry , Serial Number,CODE", f"2031-05-01,S9,{codes[0]}"])
    # when
    result = run(product, path)
    # then
    row = Code.objects.get()
    assert result.imported == 1
    assert (row.serial, row.expires_at) == ("S9", datetime(2031, 5, 2, tzinfo=UTC))
    assert stored_plaintexts(result.batch) == codes


def test_invalid_validity_window_is_refused_before_reading(product, tmp_path):
    # given
    path = write_lines(tmp_path / "codes.txt", fresh_codes(1))
    now = timezone.now()
    before = snapshot()
    # when
    with pytest.raises(InvalidBatchSettings):
        run(product, path, valid_from=now, valid_until=now - timedelta(days=1))
    # then
    assert snapshot() == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"filename": "codes.pdf"}, "cannot tell the format from the file name (extension 'pdf'); "
                                    "expected one of csv, xlsx, txt"),
        ({"filename": "codes.txt", "file_format": "json"},
         "unknown format 'json'; expected csv, xlsx or txt"),
        ({"filename": "codes.txt", "encoding": "utf-16"},
         "encoding 'utf-16' is not ASCII-compatible (UTF-16 and UTF-32 are not supported)"),
        ({"filename": "codes.txt", "encoding": "klingon"}, "unknown encoding 'klingon'"),
    ],
)
def test_unknown_format_or_encoding_is_refused(product, tmp_path, kwargs, message):
    # given
    path = write_lines(tmp_path / "codes.bin", fresh_codes(1))
    before = snapshot()
    # when
    with pytest.raises(InvalidBatchSettings) as caught:
        import_codes(product=product, file=path, **kwargs)
    # then
    assert caught.value.detail == message
    assert snapshot() == before


# --- encodings -----------------------------------------------------------------------------

def test_utf8_bom_is_dropped_and_the_header_recognised(product, tmp_path):
    # given
    codes = fresh_codes(2)
    path = write_lines(tmp_path / "bom.csv", ["code,serial", f"{codes[0]},序列1", f"{codes[1]},"], bom=True)
    # when
    result = run(product, path)
    # then
    assert result.imported == 2
    assert stored_plaintexts(result.batch) == codes
    assert list(Code.objects.order_by("pk").values_list("serial", flat=True)) == ["序列1", None]
    assert CodeEvent.objects.get().details["encoding"] == "utf-8"


def test_utf8_bom_before_a_code_without_header(product, tmp_path):
    # given
    codes = fresh_codes(1)
    path = write_lines(tmp_path / "bom.txt", codes, bom=True)
    # when
    result = run(product, path)
    # then
    assert stored_plaintexts(result.batch) == codes
    assert bytes(Code.objects.get().blind_index) == blind(codes[0])


def test_gb18030_file_with_chinese_serials_and_a_full_width_code_is_detected(product, tmp_path):
    # given a GBK-family file: Chinese serials, and one code typed in full-width characters
    codes = fresh_codes(2)
    full_width = "".join(chr(ord(c) + 0xFEE0) if c != "-" else "－" for c in codes[1])
    path = write_lines(
        tmp_path / "gbk.csv", ["code,serial", f"{codes[0]},礼品卡-001", f"{full_width},礼品卡-002"],
        encoding="gb18030",
    )
    # when
    result = run(product, path)
    # then: the full-width code is the same code in ASCII, and is sealed in ASCII
    assert result.imported == 2
    assert [bytes(r.blind_index) for r in Code.objects.order_by("pk")] == [blind(codes[0]), blind(codes[1])]
    assert stored_plaintexts(result.batch) == codes
    assert list(Code.objects.order_by("pk").values_list("serial", flat=True)) == ["礼品卡-001", "礼品卡-002"]
    assert CodeEvent.objects.get().details["encoding"] == "gb18030"


def test_forced_gbk_encoding_reads_a_gbk_file(product, tmp_path):
    # given
    codes = fresh_codes(1)
    path = write_lines(tmp_path / "gbk.csv", [f"{codes[0]},礼品卡"], encoding="gbk")
    # when
    result = run(product, path, encoding="GBK")
    # then
    assert Code.objects.get().serial == "礼品卡"
    assert CodeEvent.objects.get(batch=result.batch).details["encoding"] == "gbk"


def test_forced_utf8_on_a_gbk_file_reports_the_undecodable_lines(product, tmp_path):
    # given
    codes = fresh_codes(2)
    path = write_lines(tmp_path / "gbk.csv", [f"{codes[0]},ok", f"{codes[1]},礼品卡"], encoding="gbk")
    before = snapshot()
    # when
    with pytest.raises(ImportRejected) as caught:
        run(product, path, encoding="utf-8")
    # then
    assert caught.value.report == [(2, "not valid UTF-8 text")]
    assert snapshot() == before


def test_windows_line_endings_are_read(product, tmp_path):
    # given
    codes = fresh_codes(2)
    path = tmp_path / "crlf.csv"
    path.write_bytes(f"code,serial\r\n{codes[0]},S1\r\n{codes[1]},S2\r\n".encode())
    # when
    result = run(product, path)
    # then
    assert stored_plaintexts(result.batch) == codes
    assert list(Code.objects.order_by("pk").values_list("serial", flat=True)) == ["S1", "S2"]


# --- formats ---------------------------------------------------------------------------------

def test_plain_text_one_code_per_line_with_optional_header(product, tmp_path):
    # given
    codes = fresh_codes(3)
    path = write_lines(tmp_path / "codes.txt", ["Code", codes[0], "", codes[1], "   ", codes[2]])
    # when
    result = run(product, path)
    # then
    assert (result.imported, result.skipped) == (3, 0)
    assert stored_plaintexts(result.batch) == codes
    assert CodeEvent.objects.get().details["file_format"] == "txt"


def test_plain_text_with_a_second_column_is_refused_rather_than_glued(product, tmp_path):
    # given a tab-separated file saved as .txt
    codes = fresh_codes(1)
    path = write_lines(tmp_path / "codes.txt", [f"{codes[0]}\tSN-1"])
    before = snapshot()
    # when
    with pytest.raises(ImportRejected) as caught:
        run(product, path)
    # then
    assert caught.value.report == [
        (1, "a text file holds one code per line; use CSV for a serial or expiry column")
    ]
    assert snapshot() == before


def _xlsx(path, rows) -> str:
    workbook = Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    return str(path)


def test_xlsx_with_header_numbers_and_dates(product, tmp_path):
    # given a workbook with a numeric serial, a datetime expiry and a gap row
    codes = fresh_codes(3)
    path = _xlsx(tmp_path / "codes.xlsx", [
        ["Code", "Serial", "Expiry"],
        [codes[0], 123456, datetime(2031, 3, 1, 10, 0)],
        [None, None, None],
        [codes[1], "序列2", "2031-03-02"],
        [codes[2]],
    ])
    # when
    result = run(product, path)
    # then
    assert (result.imported, result.skipped) == (3, 0)
    assert stored_plaintexts(result.batch) == codes
    rows = list(Code.objects.order_by("pk"))
    assert [r.serial for r in rows] == ["123456", "序列2", None]
    assert [r.expires_at for r in rows] == [
        datetime(2031, 3, 1, 10, 0, tzinfo=UTC), datetime(2031, 3, 3, tzinfo=UTC), None,
    ]
    assert CodeEvent.objects.get().details["file_format"] == "xlsx"
    assert CodeEvent.objects.get().details["encoding"] is None


def test_xlsx_bad_cells_are_reported_by_row_number(product, tmp_path):
    # given numeric codes: a 16-digit number has lost digits in the spreadsheet
    codes = fresh_codes(2)
    path = _xlsx(tmp_path / "codes.xlsx", [
        [codes[0]],
        [1234567890123456],
        [codes[1], None, 45000],
        [True],
        [12.5],
    ])
    before = snapshot()
    # when
    with pytest.raises(ImportRejected) as caught:
        run(product, path)
    # then
    assert caught.value.report == [
        (2, "a code or serial of 16 or more digits is stored as a number and has lost digits; "
            "format the column as text in the spreadsheet"),
        (3, _EXPIRY_FORMAT),
        (4, "a code or serial cell holds TRUE/FALSE"),
        (5, "a code or serial cell holds a decimal number"),
    ]
    assert snapshot() == before


def test_a_file_that_is_not_xlsx_is_refused_as_a_whole(product, tmp_path):
    # given
    path = write_lines(tmp_path / "codes.xlsx", fresh_codes(2))
    before = snapshot()
    # when
    with pytest.raises(ImportRejected) as caught:
        run(product, path)
    # then
    assert caught.value.report == [(0, "not a readable XLSX workbook (BadZipFile)")]
    assert caught.value.bad_rows == 1
    assert snapshot() == before


def test_format_option_overrides_the_extension(product, tmp_path):
    # given
    codes = fresh_codes(1)
    path = write_lines(tmp_path / "codes.dat", [f"{codes[0]},S1"])
    # when
    result = run(product, path, file_format="csv")
    # then
    assert Code.objects.get(batch=result.batch).serial == "S1"


def test_an_uploaded_file_object_is_read_from_its_position(product):
    # given an in-memory upload, as the admin form hands it over
    codes = fresh_codes(2)
    upload = io.BytesIO(b"ignored prefix\n" + f"{codes[0]}\n{codes[1]}\n".encode())
    upload.seek(len(b"ignored prefix\n"))
    # when
    result = import_codes(product=product, file=upload, filename="upload.txt")
    # then
    assert stored_plaintexts(result.batch) == codes
    assert not upload.closed


def test_a_stream_that_cannot_seek_is_spooled(product):
    # given a pipe-like stream
    codes = fresh_codes(2)

    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            chunk = self._data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    # when: a duplicate forces a second pass over the data
    with pytest.raises(ImportRejected) as caught:
        import_codes(product=product, file=Pipe(f"{codes[0]}\n{codes[1]}\n{codes[0]}\n".encode()),
                     filename="pipe.txt")
    # then
    assert caught.value.report == [(3, "duplicate of line 1")]
    result = import_codes(product=product, file=Pipe(f"{codes[0]}\n{codes[1]}\n".encode()), filename="p.txt")
    assert stored_plaintexts(result.batch) == codes


# --- guessability ------------------------------------------------------------------------

def test_weak_codes_are_refused_and_nothing_is_stored(product, tmp_path):
    # given 12-digit numeric supplier codes: a space of 10^12 for 3 codes
    path = write_lines(tmp_path / "weak.txt", ["123456789012", "223456789012", "323456789012"])
    before = snapshot()
    # when
    with pytest.raises(InvalidBatchSettings) as caught:
        run(product, path)
    # then
    assert "about 10^12.0 for 3 codes" in caught.value.detail
    assert "--allow-weak-codes" in caught.value.detail
    assert snapshot() == before


def test_weak_codes_are_estimated_from_the_shortest_code(product, tmp_path):
    # given long strong codes and one short numeric code
    path = write_lines(tmp_path / "mixed.txt", [*fresh_codes(2), "12345678"])
    before = snapshot()
    # when
    with pytest.raises(InvalidBatchSettings) as caught:
        run(product, path)
    # then
    assert "about 10^8.0 for 3 codes" in caught.value.detail
    assert snapshot() == before


def test_weak_codes_are_imported_with_the_override_and_the_override_is_recorded(product, tmp_path):
    # given
    path = write_lines(tmp_path / "weak.txt", ["123456789012", "223456789012", "323456789012"])
    user = UserFactory()
    # when
    result = run(product, path, allow_weak_codes=True, created_by=user)
    # then
    assert result.imported == 3
    event = CodeEvent.objects.get()
    assert event.actor == f"user:{user.pk}"
    assert event.details["allow_weak_codes"] is True
    assert event.details["weak_codes_override"] is True
    assert event.details["estimated_space_log10"] == 12.0
    assert event.details["required_space_log10"] == 12.5
    # and the clear tail of a 12-character code keeps only a quarter of it
    assert list(Code.objects.order_by("pk").values_list("last4", flat=True)) == ["012", "012", "012"]


def test_strong_codes_with_the_override_flag_record_no_override(product, tmp_path):
    # given
    path = write_lines(tmp_path / "strong.txt", fresh_codes(2))
    # when
    run(product, path, allow_weak_codes=True)
    # then
    details = CodeEvent.objects.get().details
    assert details["allow_weak_codes"] is True
    assert "weak_codes_override" not in details
