"""Statement lines as CSV (RFC 4180, UTF-8), streamed, safe to open in a spreadsheet.

A text cell starting with = + - @ (or a tab or carriage return) is prefixed with an
apostrophe so a spreadsheet never runs it as a formula. Plain numbers ("-1.25") are
numbers, not formulas, and are left as they are so amounts stay amounts. Decimals use
".", with no thousands separators.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator

COLUMNS = (
    "line_no",
    "entry_id",
    "kind",
    "occurred_at",
    "sku",
    "source_type",
    "source_id",
    "code_last4",
    "amount",
    "currency",
    "amount_minor",
    "reverses",
    "original_statement",
)
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value) -> str:
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not _NUMBER.match(text):
        return "'" + text
    return text


def csv_rows(lines: Iterable[dict]) -> Iterator[str]:
    """The header, then one CSV row per line, each as a string ending in CRLF."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(COLUMNS)
    yield flush()
    for line in lines:
        writer.writerow([neutralise(line[column]) for column in COLUMNS])
        yield flush()
