"""Streaming readers for suppliers' code files: CSV, XLSX and plain text.

Each reader yields one tuple per non-blank row, in file order, and never holds more
than one row (plus a small read buffer) in memory, whatever the file size:

    (line, code, serial, expiry, problem)

`line` is the 1-based line (CSV, text) or row (XLSX) number an operator sees in an
editor; `code` and `serial` are stripped strings ("" when absent); `expiry` is the
raw cell (a string, or a date/datetime from a spreadsheet, or None); `problem` is
None, or the reason the row cannot be read at all (then the other fields are empty).
Reasons never quote a cell's content: a mis-ordered file could put a secret code in
any column, and reports are shown on screens and in terminals.

Text files are decoded line by line (UTF-8 with or without BOM, GB18030/GBK or any
ASCII-compatible encoding), so one undecodable line is reported instead of failing
the whole file. `detect_encoding` picks UTF-8 when the whole file decodes as UTF-8
and GB18030 (a superset of GBK and GB2312) otherwise.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from pathlib import PurePath
from typing import BinaryIO

from django.utils import timezone

FORMATS = ("csv", "xlsx", "txt")
# Longest line a text or CSV file may have: a code, a serial and an expiry fit easily.
MAX_LINE_BYTES = 4096
DETECT_CHUNK_BYTES = 1 << 18
GB18030 = "gb18030"
UTF8 = "utf-8"
# A code stored as a spreadsheet number of 16 or more digits has lost its last digits.
MAX_SAFE_NUMERIC_CODE = 10**15

CODE_HEADERS = frozenset({"code", "codes", "card code", "voucher code", "coupon code"})
SERIAL_HEADERS = frozenset({"serial", "serial number", "serial_number", "serial no", "sn",
                            "card number", "card_number", "card no"})
EXPIRY_HEADERS = frozenset({"expiry", "expires", "expires_at", "expires at", "expiry date",
                            "expiry_date", "expiration", "expiration date", "valid until",
                            "valid_until"})

Row = tuple[int, str, str, "str | date | datetime | None", "str | None"]


class UnreadableFile(ValueError):
    """The file as a whole cannot be read (wrong format, bad header). `line` is 0 for the file."""

    def __init__(self, reason: str, *, line: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


def format_from_filename(filename: str) -> str:
    """The file format named by a file's extension. Raises UnreadableFile."""
    suffix = PurePath(filename).suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    raise UnreadableFile(
        f"cannot tell the format from the file name (extension {suffix or 'missing'!r}); "
        f"expected one of {', '.join(FORMATS)}"
    )


def check_encoding(encoding: str) -> str:
    """The canonical codec name if `encoding` can be read line by line. Raises LookupError.

    Only encodings that write ASCII (hence newline and comma) as single bytes work:
    lines are split on the newline byte before decoding.
    """
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise LookupError(f"unknown encoding {encoding!r}") from None
    if "\n,a".encode(name, errors="strict") != b"\n,a":
        raise LookupError(
            f"encoding {encoding!r} is not ASCII-compatible (UTF-16 and UTF-32 are not supported)"
        )
    return name


@contextmanager
def open_source(file: str | os.PathLike | BinaryIO) -> Iterator[BinaryIO]:
    """A seekable binary stream over `file` (a path or an open binary file).

    An open file is read from its current position; a stream that cannot seek is spooled
    to a temporary file first (readers make several passes).
    """
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as stream:
            yield stream
        return
    if _seekable(file):
        yield io.BufferedReader(_Rewindable(file), buffer_size=1 << 16)
        return
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(file, spool, DETECT_CHUNK_BYTES)
        spool.seek(0)
        yield spool


def _seekable(file) -> bool:
    try:
        return bool(file.seekable())
    except (AttributeError, ValueError):
        return False


class _Rewindable(io.RawIOBase):
    """Wraps a caller's seekable file so that position 0 is where the caller left it."""

    def __init__(self, file: BinaryIO) -> None:
        super().__init__()
        self._file = file
        self._start = file.tell()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            return self._file.seek(self._start + offset) - self._start
        return self._file.seek(offset, whence) - self._start

    def tell(self) -> int:
        return self._file.tell() - self._start

    def readinto(self, buffer) -> int:
        data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:  # the caller owns the file
        pass


def detect_encoding(stream: BinaryIO) -> str:
    """"utf-8" when the whole stream decodes as UTF-8 (with or without BOM), else "gb18030".

    Reads the stream once in 256 KiB chunks (fast next to parsing) and rewinds it.
    """
    stream.seek(0)
    decoder = codecs.getincrementaldecoder(UTF8)(errors="strict")
    try:
        while chunk := stream.read(DETECT_CHUNK_BYTES):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
        return UTF8
    except UnicodeDecodeError:
        return GB18030
    finally:
        stream.seek(0)


def count_lines(stream: BinaryIO) -> int:
    """Lines in a text file (for a progress bar's total); rewinds the stream."""
    stream.seek(0)
    lines, last = 0, b""
    while chunk := stream.read(DETECT_CHUNK_BYTES):
        lines += chunk.count(b"\n")
        last = chunk[-1:]
    stream.seek(0)
    return lines + (1 if last not in (b"", b"\n") else 0)


def count_data_rows(stream: BinaryIO, *, file_format: str, encoding: str | None = None) -> int:
    """Data rows of a file (no header, no blank line): a progress bar's total. Rewinds the stream.

    One parse of the file without checking its codes. Raises UnreadableFile.
    """
    if encoding is None and file_format != "xlsx":
        encoding = detect_encoding(stream)
    try:
        return sum(1 for _ in read_rows(stream, file_format=file_format, encoding=encoding or "utf-8"))
    finally:
        stream.seek(0)


def read_rows(stream: BinaryIO, *, file_format: str, encoding: str) -> Iterator[Row]:
    """Rows of a supplier's file from its start. Raises UnreadableFile (bad header, not XLSX)."""
    stream.seek(0)
    if file_format == "csv":
        return _csv_rows(_text_lines(stream, encoding))
    if file_format == "txt":
        return _txt_rows(_text_lines(stream, encoding))
    if file_format == "xlsx":
        return _xlsx_rows(stream)
    raise UnreadableFile(f"unknown format {file_format!r}; expected one of {', '.join(FORMATS)}")


# --- text and CSV -----------------------------------------------------------------------

def _text_lines(stream: BinaryIO, encoding: str) -> Iterator[tuple[int, str | None, str | None]]:
    """(line, text, problem) for every line, without its line ending; BOM dropped."""
    readline = stream.readline
    line_no = 0
    label = "UTF-8" if encoding.startswith("utf") else encoding.upper()
    while raw := readline(MAX_LINE_BYTES + 1):
        line_no += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while (rest := readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
            yield line_no, None, f"line longer than {MAX_LINE_BYTES} bytes"
            continue
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            yield line_no, None, f"not valid {label} text"
            continue
        if line_no == 1 and text.startswith("\ufeff"):
            text = text[1:]
        yield line_no, text.rstrip("\r\n"), None


def _split_csv(text: str) -> list[str] | None:
    """Cells of one CSV line; None when a quoted cell does not close on the line."""
    if '"' not in text:
        return text.split(",")
    try:
        cells = next(csv.reader([text], strict=True))
    except csv.Error:
        return None
    return cells


def _csv_rows(lines: Iterator[tuple[int, str | None, str | None]]) -> Iterator[Row]:
    columns: tuple[int, int | None, int | None] | None = None  # code, serial, expiry positions
    for line_no, text, problem in lines:
        if problem is not None:
            yield line_no, "", "", None, problem
            continue
        assert text is not None  # a line is read as text or reported as a problem
        if not text.strip():
            continue
        cells = _split_csv(text)
        if cells is None:
            yield line_no, "", "", None, "a quoted cell is not closed on its line"
            continue
        if columns is None:
            header = _header_columns(cells, line_no)
            columns = header or (0, 1, 2)
            if header:
                continue
        if len(cells) == 1 and columns[0] == 0:  # the common one-column file, fast
            code = cells[0].strip()
            yield (line_no, code, "", None, None) if code else (line_no, "", "", None, "missing code")
            continue
        yield _pick(line_no, cells, columns)


def _txt_rows(lines: Iterator[tuple[int, str | None, str | None]]) -> Iterator[Row]:
    first = True
    for line_no, text, problem in lines:
        if problem is not None:
            yield line_no, "", "", None, problem
            continue
        assert text is not None  # a line is read as text or reported as a problem
        code = text.strip()
        if not code:
            continue
        if first:
            first = False
            if code.casefold() in CODE_HEADERS:
                continue
        if "\t" in code or "," in code:
            yield line_no, "", "", None, (
                "a text file holds one code per line; use CSV for a serial or expiry column"
            )
            continue
        yield line_no, code, "", None, None


def _header_columns(cells: list, line_no: int) -> tuple[int, int | None, int | None] | None:
    """Column positions named by a header row, or None when the row is data.

    A row is a header when one of its cells names the code column. Every other non-empty
    cell must name a known column: an unknown one (say "pin") may hold the real secret,
    and silently dropping it would import wrong codes. Raises UnreadableFile.
    """
    names = [str(c).strip().casefold() if c is not None else "" for c in cells]
    if not any(n in CODE_HEADERS for n in names):
        return None
    code = serial = expiry = None
    for position, name in enumerate(names):
        if not name:
            continue
        if name in CODE_HEADERS and code is None:
            code = position
        elif name in SERIAL_HEADERS and serial is None:
            serial = position
        elif name in EXPIRY_HEADERS and expiry is None:
            expiry = position
        else:
            raise UnreadableFile(
                f"header column {position + 1} is not one of code, serial, expiry "
                "(or it is repeated)", line=line_no,
            )
    assert code is not None  # a name of CODE_HEADERS is among them (checked above)
    return code, serial, expiry


def _pick(line_no: int, cells: list, columns: tuple[int, int | None, int | None]) -> Row:
    code_at, serial_at, expiry_at = columns
    width = len(cells)
    used = {code_at, serial_at, expiry_at}
    for position in range(width):
        if position not in used and _cell_text(cells[position]):
            return line_no, "", "", None, (
                "too many columns: expected code, serial, expiry"
                if columns == (0, 1, 2) else f"column {position + 1} has no header"
            )
    code = _cell_text(cells[code_at]) if code_at < width else ""
    serial = _cell_text(cells[serial_at]) if serial_at is not None and serial_at < width else ""
    expiry = cells[expiry_at] if expiry_at is not None and expiry_at < width else None
    if isinstance(expiry, str):
        expiry = expiry.strip() or None
    if not code:
        return line_no, "", "", None, "missing code"
    return line_no, code, serial, expiry, None


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    return str(value).strip()


# --- XLSX -------------------------------------------------------------------------------

def _xlsx_rows(stream: BinaryIO) -> Iterator[Row]:
    """Rows of the first worksheet, streamed with openpyxl's read-only mode.

    Note: openpyxl still loads the workbook's shared-strings table whole, so memory
    grows with the number of distinct strings; CSV is the format for very large files.
    """
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(stream, read_only=True, data_only=True)
    except Exception as exc:  # zipfile.BadZipFile, KeyError, InvalidFileException, XML errors
        raise UnreadableFile(f"not a readable XLSX workbook ({type(exc).__name__})") from None
    try:
        sheet = workbook.worksheets[0]
        sheet.reset_dimensions()  # some writers record wrong dimensions; read every row
        columns: tuple[int, int | None, int | None] | None = None
        for row_no, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            if not any(_cell_text(v) for v in values):
                continue
            if columns is None:
                header = _header_columns(list(values), row_no)
                columns = header or (0, 1, 2)
                if header:
                    continue
            cells = [_xlsx_text(v) if i != columns[2] else v for i, v in enumerate(values)]
            problem = next((c for c in cells if isinstance(c, _CellProblem)), None)
            if problem is not None:
                yield row_no, "", "", None, problem.reason
                continue
            yield _pick(row_no, cells, columns)
    finally:
        workbook.close()


class _CellProblem:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _xlsx_text(value):
    """A code or serial cell as text; numbers only when no digit can have been lost."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return _CellProblem("a code or serial cell holds TRUE/FALSE")
    if isinstance(value, int | float):
        if isinstance(value, float) and not value.is_integer():
            return _CellProblem("a code or serial cell holds a decimal number")
        if abs(value) >= MAX_SAFE_NUMERIC_CODE:
            return _CellProblem(
                "a code or serial of 16 or more digits is stored as a number and has lost digits; "
                "format the column as text in the spreadsheet"
            )
        return str(int(value))
    if isinstance(value, date | datetime | time | timedelta):
        return _CellProblem("a code or serial cell holds a date or time")
    return str(value)


# --- expiry -----------------------------------------------------------------------------

class BadExpiry(ValueError):
    pass


def parse_expiry(value) -> datetime | None:
    """An aware expiry instant from an ISO 8601 date or datetime (string or spreadsheet value).

    A date means the code is good through that whole day in the server's time zone, so
    it expires at the next midnight. A datetime without an offset is in the server's
    time zone. Raises BadExpiry.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        return _end_of_day(value)
    elif isinstance(value, str):
        text = value.strip()
        if len(text) <= 10 and "T" not in text and ":" not in text:
            try:
                return _end_of_day(date.fromisoformat(text))
            except ValueError:
                raise BadExpiry(_EXPIRY_FORMAT) from None
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise BadExpiry(_EXPIRY_FORMAT) from None
    else:
        raise BadExpiry(_EXPIRY_FORMAT)
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


_EXPIRY_FORMAT = (
    "expiry is not an ISO 8601 date or datetime (YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM])"
)


def _end_of_day(day: date) -> datetime:
    try:
        next_day = day + timedelta(days=1)
    except OverflowError:
        raise BadExpiry(_EXPIRY_FORMAT) from None
    return timezone.make_aware(datetime.combine(next_day, time.min))
