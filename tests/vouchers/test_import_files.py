"""The streaming readers of supplier files (no database)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from openpyxl import Workbook

from vouchers.importfile import (
    MAX_LINE_BYTES,
    BadExpiry,
    UnreadableFile,
    count_lines,
    detect_encoding,
    format_from_filename,
    open_source,
    parse_expiry,
    read_rows,
)


def rows_of(data: bytes, file_format: str = "csv", encoding: str = "utf-8") -> list[tuple]:
    return list(read_rows(io.BytesIO(data), file_format=file_format, encoding=encoding))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"ABCD-1234\n", "utf-8"),
        (b"\xef\xbb\xbfABCD-1234,\xe7\xa4\xbc\n", "utf-8"),
        ("ABCD-1234,礼品卡\n".encode("gb18030"), "gb18030"),
        ("ABCD-1234,礼品卡\n".encode("gbk"), "gb18030"),
        (b"", "utf-8"),
    ],
)
def test_encoding_is_utf8_when_the_whole_file_decodes_else_gb18030(data, expected):
    # given
    stream = io.BytesIO(data)
    # when
    found = detect_encoding(stream)
    # then
    assert found == expected
    assert stream.tell() == 0


def test_a_non_utf8_byte_far_into_the_file_is_still_seen():
    # given 1 MB of ASCII, then one GBK line
    stream = io.BytesIO(b"ABCD-EFGH-JKMN\n" * 70_000 + "WXYZ-2345,卡\n".encode("gbk"))
    # when / then
    assert detect_encoding(stream) == "gb18030"


@pytest.mark.parametrize(
    ("data", "lines"), [(b"", 0), (b"a\n", 1), (b"a\nb", 2), (b"a\r\nb\r\n", 2), (b"\n\n\n", 3)]
)
def test_lines_are_counted_for_the_progress_bar(data, lines):
    assert count_lines(io.BytesIO(data)) == lines


@pytest.mark.parametrize(
    ("filename", "file_format"),
    [("codes.csv", "csv"), ("CODES.CSV", "csv"), ("a.b.xlsx", "xlsx"), ("list.txt", "txt")],
)
def test_format_comes_from_the_extension(filename, file_format):
    assert format_from_filename(filename) == file_format


def test_an_unknown_extension_is_refused():
    with pytest.raises(UnreadableFile) as caught:
        format_from_filename("codes")
    assert caught.value.reason == (
        "cannot tell the format from the file name (extension 'missing'); expected one of csv, xlsx, txt"
    )


def test_csv_rows_carry_their_line_numbers_and_quoted_cells():
    # given a header, a blank line, a quoted cell with a comma and trailing empty cells
    data = b'code,serial,expiry\n\nAAAA-BBBB,"SN,1",2031-01-01\n  CCCC-DDDD  ,,\n'
    # when
    rows = rows_of(data)
    # then
    assert rows == [
        (3, "AAAA-BBBB", "SN,1", "2031-01-01", None),
        (4, "CCCC-DDDD", "", None, None),
    ]


def test_a_line_longer_than_the_limit_is_one_bad_row_and_reading_goes_on():
    # given
    data = b"A" * (MAX_LINE_BYTES * 3) + b"\nBBBB-CCCC\n"
    # when
    rows = rows_of(data, "txt")
    # then
    assert rows == [
        (1, "", "", None, f"line longer than {MAX_LINE_BYTES} bytes"),
        (2, "BBBB-CCCC", "", None, None),
    ]


def test_a_header_is_recognised_in_any_case_and_with_a_bom():
    # given
    data = b"\xef\xbb\xbfCODE,Serial\nAAAA-BBBB,S1\n"
    # when / then
    assert rows_of(data) == [(2, "AAAA-BBBB", "S1", None, None)]


def test_a_repeated_header_column_is_refused():
    with pytest.raises(UnreadableFile) as caught:
        rows_of(b"code,serial,serial\nAAAA,1,2\n")
    assert (caught.value.line, caught.value.reason) == (
        1, "header column 3 is not one of code, serial, expiry (or it is repeated)"
    )


def test_gb18030_lines_decode_to_chinese_and_full_width_text():
    # given
    data = "ＡＢＣＤ－１２３４,礼品卡\n".encode("gb18030")
    # when / then
    assert rows_of(data, encoding="gb18030") == [(1, "ＡＢＣＤ－１２３４", "礼品卡", None, None)]


def test_an_undecodable_line_is_reported_by_number():
    # given a byte that is not GB18030 on line 2
    data = b"AAAA-BBBB\n\xff\xff\nCCCC-DDDD\n"
    # when / then
    assert rows_of(data, "txt", encoding="gb18030") == [
        (1, "AAAA-BBBB", "", None, None),
        (2, "", "", None, "not valid GB18030 text"),
        (3, "CCCC-DDDD", "", None, None),
    ]


def test_xlsx_from_an_uploaded_stream_with_a_leading_offset():
    # given a workbook handed over as an open file positioned after some bytes
    book = io.BytesIO()
    workbook = Workbook()
    workbook.active.append(["code", "expiry"])
    workbook.active.append(["AAAA-BBBB", date(2031, 1, 2)])
    workbook.save(book)
    upload = io.BytesIO(b"junk" + book.getvalue())
    upload.seek(4)
    # when
    with open_source(upload) as stream:
        rows = list(read_rows(stream, file_format="xlsx", encoding=""))
    # then
    assert rows == [(2, "AAAA-BBBB", "", datetime(2031, 1, 2), None)]
    assert not upload.closed


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2031-01-31", datetime(2031, 2, 1, tzinfo=UTC)),
        ("20310131", datetime(2031, 2, 1, tzinfo=UTC)),
        ("2031-01-31T10:00:00Z", datetime(2031, 1, 31, 10, tzinfo=UTC)),
        ("2031-01-31 10:00", datetime(2031, 1, 31, 10, tzinfo=UTC)),
        ("2031-01-31T10:00:00+08:00", datetime(2031, 1, 31, 2, tzinfo=UTC)),
        (date(2031, 1, 31), datetime(2031, 2, 1, tzinfo=UTC)),
        (datetime(2031, 1, 31, 10), datetime(2031, 1, 31, 10, tzinfo=UTC)),
        (datetime(2031, 1, 31, 10, tzinfo=timezone(timedelta(hours=-5))),
         datetime(2031, 1, 31, 15, tzinfo=UTC)),
        (None, None),
        ("", None),
    ],
)
def test_expiry_accepts_iso_8601_dates_and_datetimes(value, expected):
    assert parse_expiry(value) == expected


@pytest.mark.parametrize(
    "value", ["31/01/2031", "2031-13-01", "tomorrow", "2031-01-31T25:00", 45000, "9999-12-31"]
)
def test_expiry_refuses_anything_else(value):
    with pytest.raises(BadExpiry):
        parse_expiry(value)
