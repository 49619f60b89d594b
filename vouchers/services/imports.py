"""Importing a supplier's file of codes as one new batch: all of it, or (on request) its valid rows.

How it works, and why:

1. The file is read as a stream (`vouchers.importfile`): memory stays bounded whatever
   its size. Each row is validated and normalised; valid codes are sealed (AES-GCM,
   blind index) and streamed straight into the codes table (COPY on PostgreSQL).
   A clean file - the common case - is thus read and written once.
2. The codes table's unique index on the blind index is the duplicate check: if the
   load hits it (a code twice in the file, or already stored), or if a row is bad and
   the operator did not ask to skip bad rows, that first load is rolled back to its
   savepoint and the file is read again into a temporary staging table, where SQL
   finds every duplicate within the file (with the line it repeats) and every code
   already stored. Nothing in Python holds a set of all codes.
3. Any bad row: the whole import is refused with a report of (line, reason), unless
   `skip_invalid`, in which case the valid rows go in and the skipped ones are reported
   and counted. Reasons never quote the code, and "already stored" never says where.
4. Everything runs in one transaction: the batch, its codes, its stock counters and
   its event become visible together at commit, and a refused import leaves nothing.
5. Concurrent imports of overlapping files: a load that meets another session's
   uncommitted code waits for it; if that session commits, the unique index stops this
   load and the checked pass reports the code as already stored. A deadlock between two
   loads (shared codes in different orders) sends the victim to the checked pass too.
   On PostgreSQL checked passes take an advisory lock, so two of them never race.
6. The code space is estimated from the shortest code and refused if too small for
   the number of codes (too guessable), unless the audited weak-codes override is given.
"""

from __future__ import annotations

import heapq
import math
import os
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePath
from typing import BinaryIO

from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from vouchers import codeformat
from vouchers.codeformat import InvalidCode, TooGuessable
from vouchers.exceptions import ImportRejected, InvalidBatchSettings
from vouchers.importfile import (
    BadExpiry,
    Row,
    UnreadableFile,
    check_encoding,
    detect_encoding,
    format_from_filename,
    open_source,
    parse_expiry,
    read_rows,
)
from vouchers.models import Batch, Code, Product
from vouchers.services.batches import finish_batch, start_batch
from vouchers.services.code_writer import (
    BatchSealer,
    code_row_constants,
    copy_rows,
    display_tail,
    insert_rows,
    write_full_code_rows,
)

REPORT_LIMIT = 1_000
PROGRESS_EVERY = 10_000
MAX_SERIAL_LENGTH: int = Code._meta.get_field("serial").max_length  # type: ignore[assignment]  # set on the field
CONFLICT_RETRIES = 3
# Advisory lock key (PostgreSQL) serialising the checked pass of concurrent imports.
CHECKED_PASS_LOCK = 0x766F7563  # "vouc"

STAGING = "vouchers_import_staging"
REJECTS = "vouchers_import_rejects"
STAGING_COLUMNS = ("line", "blind_index", "ciphertext", "nonce", "key_id", "last4", "serial", "expires_at")
STAGING_TYPES = ("int4", "bytea", "bytea", "bytea", "varchar", "varchar", "varchar", "timestamptz")


@dataclass(frozen=True)
class ImportResult:
    batch: Batch
    imported: int
    skipped: int
    # (line number, reason) of skipped rows, the first REPORT_LIMIT by line; `skipped` is the true count.
    report: list[tuple[int, str]]


@dataclass
class _Tally:
    """What reading the file found besides valid codes: bad rows and the shortest code."""

    bad: int = 0
    report: list[tuple[int, str]] = field(default_factory=list)
    valid: int = 0
    shortest: str | None = None

    def bad_row(self, line: int, reason: str) -> None:
        self.bad += 1
        if len(self.report) < REPORT_LIMIT:
            self.report.append((line, reason))


class _RereadChecked(Exception):
    """Internal: the fast load cannot stand; re-read the file through the staging table."""


def import_codes(
    *,
    product: Product,
    file: str | os.PathLike | BinaryIO,
    filename: str,
    encoding: str | None = None,
    file_format: str | None = None,
    skip_invalid: bool = False,
    case_sensitive: bool = False,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    created_by=None,
    allow_weak_codes: bool = False,
    reference: str = "",
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import a supplier's file (CSV, XLSX or text) as one new batch of `product`.

    `file_format` defaults from the file name's extension; `encoding` (text formats)
    defaults to UTF-8 with or without BOM, or GB18030 (a superset of GBK) when the file
    is not valid UTF-8. `progress` is called with the number of data rows read since its last
    call (during the first pass over the file). Must be called outside any transaction:
    the import is one durable transaction, so nothing is visible before it commits.

    Raises ImportRejected (bad rows, with .report of (line, reason) and .bad_rows, or a
    file that cannot be read at all, reported as line 0 or the header's line; nothing
    stored) and InvalidBatchSettings (unknown format or encoding, a validity window
    that ends before it starts, or codes too guessable for their number without
    `allow_weak_codes`; nothing stored), and OSError when a path cannot be opened.
    """
    try:
        file_format = (file_format or format_from_filename(filename)).lower()
        if file_format not in ("csv", "xlsx", "txt"):
            raise UnreadableFile(f"unknown format {file_format!r}; expected csv, xlsx or txt")
    except UnreadableFile as exc:
        raise InvalidBatchSettings(exc.reason) from None
    if encoding:
        try:
            encoding = check_encoding(encoding)
        except LookupError as exc:
            raise InvalidBatchSettings(str(exc)) from None
    with open_source(file) as stream:
        if file_format != "xlsx" and not encoding:
            encoding = detect_encoding(stream)
        try:
            return _import(
                stream=stream, product=product, filename=filename, encoding=encoding or "",
                file_format=file_format, skip_invalid=skip_invalid, case_sensitive=case_sensitive,
                valid_from=valid_from, valid_until=valid_until, created_by=created_by,
                allow_weak_codes=allow_weak_codes, reference=reference, progress=progress,
            )
        except UnreadableFile as exc:
            raise ImportRejected(
                f"The file cannot be read: {exc.reason}. Nothing was imported.",
                report=[(exc.line, exc.reason)], bad_rows=1,
            ) from None


def _import(
    *, stream: BinaryIO, product: Product, filename: str, encoding: str, file_format: str,
    skip_invalid: bool, case_sensitive: bool, valid_from: datetime | None,
    valid_until: datetime | None, created_by, allow_weak_codes: bool, reference: str,
    progress: Callable[[int], None] | None,
) -> ImportResult:
    with transaction.atomic(durable=True):
        batch = start_batch(
            product=product, source=Batch.Source.IMPORTED, case_sensitive=case_sensitive,
            valid_from=valid_from, valid_until=valid_until, created_by=created_by,
            reference=reference or PurePath(filename).name,
        )
        now = timezone.now()
        sealer = BatchSealer(batch_id=batch.pk)

        def rows() -> Iterator[Row]:
            return read_rows(stream, file_format=file_format, encoding=encoding)

        tally = _Tally()
        try:
            with transaction.atomic():  # savepoint: the fast load, undone if it cannot stand
                imported = write_full_code_rows(
                    rows=_sealed(
                        _valid_rows(rows(), tally=tally, case_sensitive=case_sensitive, now=now,
                                    stop_at_bad=not skip_invalid, progress=progress),
                        sealer=sealer, constants=code_row_constants(batch_id=batch.pk, now=now),
                    ),
                )
        except (IntegrityError, OperationalError, _RereadChecked) as exc:
            if isinstance(exc, OperationalError) and not _is_deadlock(exc):
                raise
            tally = _Tally()
            imported = _checked_load(
                rows=rows(), tally=tally, batch=batch, sealer=sealer, now=now,
                case_sensitive=case_sensitive, skip_invalid=skip_invalid,
                # A bad row without skip_invalid means refusal: no code will be stored, so none
                # needs sealing. After a conflict, every valid row may still go in.
                seal_codes=not isinstance(exc, _RereadChecked),
            )
        if imported == 0:
            raise ImportRejected(
                "The file holds no code that can be imported. Nothing was imported.",
                report=tally.report, bad_rows=tally.bad,
            )
        override = _check_guessable(
            count=imported, shortest=tally.shortest, case_sensitive=case_sensitive,
            allow_weak_codes=allow_weak_codes,
        )
        finish_batch(
            batch=batch, loaded=imported, created_by=created_by,
            details={
                "skipped": tally.bad, "file_format": file_format, "encoding": encoding or None,
                "filename": PurePath(filename).name[:200], "allow_weak_codes": allow_weak_codes,
                **override,
            },
        )
    return ImportResult(batch=batch, imported=imported, skipped=tally.bad, report=tally.report)


def _is_deadlock(exc: OperationalError) -> bool:
    """Two imports inserting the same codes in different orders: PostgreSQL aborts one of them."""
    return getattr(exc.__cause__, "sqlstate", None) == "40P01"


# --- validating rows ------------------------------------------------------------------

def _valid_rows(
    rows: Iterable[Row], *, tally: _Tally, case_sensitive: bool, now: datetime, stop_at_bad: bool,
    progress: Callable[[int], None] | None,
) -> Iterator[tuple[int, str, str, str | None, datetime | None]]:
    """(line, display, normalised, serial, expires_at) of every valid row.

    Bad rows go to the tally. With `stop_at_bad`, the first bad row raises
    _RereadChecked (the import will be refused; the checked pass reports everything).
    """
    normalise = codeformat.normalise
    nfkc = unicodedata.normalize
    shortest_len = codeformat.MAX_CODE_LENGTH + 1
    # Progress counts data rows (a header or a blank line is no row), every PROGRESS_EVERY.
    reported = 0
    next_progress = PROGRESS_EVERY
    seen = 0
    for _line, raw, serial, expiry, problem in rows:
        line = _line
        seen += 1
        if progress is not None and seen >= next_progress:
            progress(seen - reported)
            reported, next_progress = seen, seen + PROGRESS_EVERY
        expires_at = None
        if problem is None:
            try:
                normalised = normalise(raw, case_sensitive=case_sensitive)
            except InvalidCode as exc:
                problem = str(exc)
            else:
                if serial or expiry is not None:
                    problem, expires_at = _check_serial_and_expiry(serial, expiry, now=now)
        if problem is not None:
            tally.bad_row(line, problem)
            if stop_at_bad:
                raise _RereadChecked
            continue
        tally.valid += 1
        if len(normalised) < shortest_len:
            shortest_len, tally.shortest = len(normalised), normalised
        # What the customer receives: the supplier's form, full-width characters made ASCII.
        display = raw if raw.isascii() else nfkc("NFKC", raw)
        yield line, display, normalised, serial or None, expires_at
    if progress is not None and seen > reported:
        progress(seen - reported)


def _check_serial_and_expiry(serial: str, expiry, *, now: datetime) -> tuple[str | None, datetime | None]:
    """(problem, expires_at) of a row's optional columns; problem is None when they are valid."""
    if serial:
        if len(serial) > MAX_SERIAL_LENGTH:
            return f"serial longer than {MAX_SERIAL_LENGTH} characters", None
        if not serial.isprintable():
            return "serial holds control characters", None
    if expiry is None:
        return None, None
    try:
        expires_at = parse_expiry(expiry)
    except BadExpiry as exc:
        return str(exc), None
    if expires_at is not None and expires_at <= now:
        return "expiry is in the past", None
    return None, expires_at


def _sealed(valid: Iterable[tuple], *, sealer: BatchSealer, constants: tuple) -> Iterator[tuple]:
    """Whole rows for `write_full_code_rows`; the plaintext goes no further."""
    blind_index, seal, key_id = sealer.blind_index, sealer.seal, sealer.key_id
    batch_id, state, stamp, canary = constants
    for _line, display, normalised, serial, expires_at in valid:
        index = blind_index(normalised)
        ciphertext, nonce = seal(display, index)
        tail = normalised[-4:] if len(normalised) >= 16 else display_tail(normalised)
        yield batch_id, ciphertext, nonce, key_id, index, tail, serial, expires_at, state, stamp, canary


def _staged(valid: Iterable[tuple], *, sealer: BatchSealer, seal_codes: bool) -> Iterator[tuple]:
    """Rows for the staging table (STAGING_COLUMNS order); sealed only if they may be kept."""
    blind_index, seal, key_id = sealer.blind_index, sealer.seal, sealer.key_id
    for line, display, normalised, serial, expires_at in valid:
        index = blind_index(normalised)
        if seal_codes:
            ciphertext, nonce = seal(display, index)
            yield line, index, ciphertext, nonce, key_id, display_tail(normalised), serial, expires_at
        else:
            yield line, index, None, None, None, None, None, None


# --- the checked pass: staging table, duplicates found in SQL -------------------------

# Table names in the SQL below are module constants, never input; values go in as parameters.
_CODE_TABLE = Code._meta.db_table
_CLEAR_REJECTS_SQL = f"DELETE FROM {REJECTS}"  # noqa: S608
_COUNT_REJECTS_SQL = f"SELECT COUNT(*) FROM {REJECTS}"  # noqa: S608
_FIRST_REJECTS_SQL = f"SELECT line, first_line, stored FROM {REJECTS} ORDER BY line LIMIT %s"  # noqa: S608
_FIND_DUPLICATES_SQL = f"""
    INSERT INTO {REJECTS} (line, first_line, stored)
    SELECT v.line, v.first_line, v.stored FROM (
        SELECT s.line AS line,
               MIN(s.line) OVER (PARTITION BY s.blind_index) AS first_line,
               CASE WHEN EXISTS (
                   SELECT 1 FROM {_CODE_TABLE} c WHERE c.blind_index = s.blind_index
               ) THEN 1 ELSE 0 END AS stored
        FROM {STAGING} s
    ) v
    WHERE v.stored = 1 OR v.line <> v.first_line
"""  # noqa: S608
_INSERT_FROM_STAGING_SQL = f"""
    INSERT INTO {_CODE_TABLE} (batch_id, ciphertext, nonce, key_id, blind_index, last4, serial,
                               expires_at, state, state_changed_at, is_canary)
    SELECT %s, s.ciphertext, s.nonce, s.key_id, s.blind_index, s.last4, s.serial,
           s.expires_at, %s, %s, %s
    FROM {STAGING} s
    WHERE NOT EXISTS (SELECT 1 FROM {REJECTS} r WHERE r.line = s.line)
    ORDER BY s.line
"""  # noqa: S608


def _checked_load(
    *, rows: Iterable[Row], tally: _Tally, batch: Batch, sealer: BatchSealer, now: datetime,
    case_sensitive: bool, skip_invalid: bool, seal_codes: bool,
) -> int:
    """Read the file into a staging table, report every bad row and duplicate, and insert
    the rest if there is no bad row or `skip_invalid` is set. Returns how many codes were
    inserted. Without `seal_codes` only blind indexes are staged (for a file known to be
    refused).

    Raises ImportRejected when a row is bad and `skip_invalid` is not set.
    """
    postgres = connection.vendor == "postgresql"
    _create_temp_tables(postgres=postgres)
    staged = _staged(
        _valid_rows(rows, tally=tally, case_sensitive=case_sensitive, now=now, stop_at_bad=False,
                    progress=None),
        sealer=sealer, seal_codes=seal_codes,
    )
    if postgres:
        copy_rows(table=STAGING, columns=STAGING_COLUMNS, types=STAGING_TYPES, rows=staged)
    else:
        insert_rows(table=STAGING, columns=STAGING_COLUMNS, rows=staged,
                    datetime_at=(STAGING_COLUMNS.index("expires_at"),))
    read_report, read_bad = list(tally.report), tally.bad
    if postgres:
        # One checked pass at a time finds duplicates and inserts: two of them can then neither
        # miss each other's codes nor deadlock inserting shared codes in different orders.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHECKED_PASS_LOCK])
    for attempt in range(1, CONFLICT_RETRIES + 1):
        duplicates, duplicate_report = _find_duplicates()
        tally.bad = read_bad + duplicates
        tally.report = list(heapq.merge(read_report, duplicate_report))[:REPORT_LIMIT]
        if tally.bad and not skip_invalid:
            raise ImportRejected(
                f"{tally.bad:,} bad row{'s' if tally.bad != 1 else ''} in the file. Nothing was imported.",
                report=tally.report, bad_rows=tally.bad,
            )
        if not seal_codes:  # unreachable: a bad row was seen, so the file was refused above
            raise RuntimeError(_("codes were staged unsealed but the file was not refused"))
        try:
            with transaction.atomic():
                inserted = _insert_from_staging(batch_id=batch.pk, now=now)
            break
        except (IntegrityError, OperationalError) as exc:
            # A concurrent import wrote one of these codes after the check (and committed, or
            # deadlocked with us): check again against what is stored now.
            if attempt == CONFLICT_RETRIES or (isinstance(exc, OperationalError) and not _is_deadlock(exc)):
                raise
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {REJECTS}")
        cursor.execute(f"DROP TABLE {STAGING}")
    return inserted


def _create_temp_tables(*, postgres: bool) -> None:
    binary, stamp = ("bytea", "timestamptz") if postgres else ("blob", "datetime")
    on_commit = " ON COMMIT DROP" if postgres else ""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {STAGING}")
        cursor.execute(f"DROP TABLE IF EXISTS {REJECTS}")
        cursor.execute(
            f"CREATE TEMP TABLE {STAGING} (line integer NOT NULL, blind_index {binary} NOT NULL, "
            f"ciphertext {binary}, nonce {binary}, key_id varchar(32), last4 varchar(4), "
            f"serial varchar(64), expires_at {stamp}){on_commit}"
        )
        cursor.execute(
            f"CREATE TEMP TABLE {REJECTS} (line integer NOT NULL, first_line integer NOT NULL, "
            f"stored integer NOT NULL){on_commit}"
        )


def _find_duplicates() -> tuple[int, list[tuple[int, str]]]:
    """Fill the rejects table from staging; return (count, the first REPORT_LIMIT as (line, reason)).

    A row is rejected when its code is already stored (any batch, any merchant: the
    reason does not say which) or repeats an earlier line of the file.
    """
    with connection.cursor() as cursor:
        cursor.execute(_CLEAR_REJECTS_SQL)
        cursor.execute(_FIND_DUPLICATES_SQL)
        cursor.execute(_COUNT_REJECTS_SQL)
        (count,) = cursor.fetchone()
        cursor.execute(_FIRST_REJECTS_SQL, [REPORT_LIMIT])
        report = [
            (line, "already stored" if stored else f"duplicate of line {first_line}")
            for line, first_line, stored in cursor.fetchall()
        ]
    return count, report


def _insert_from_staging(*, batch_id: int, now: datetime) -> int:
    stamp = now if connection.vendor == "postgresql" else connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_FROM_STAGING_SQL, [batch_id, Code.State.AVAILABLE.value, stamp, False])
        return cursor.rowcount


# --- guessability -----------------------------------------------------------------------

def _check_guessable(
    *, count: int, shortest: str | None, case_sensitive: bool, allow_weak_codes: bool
) -> dict:
    """Refuse codes whose space is too small for their number, unless overridden.

    The space is estimated from the shortest code's length and character classes (a
    supplier's codes are rarely shorter than their alphabet allows). Many real supplier
    cards are weak; `allow_weak_codes` imports them anyway and the override is recorded
    in the batch event. Returns the event details of an override. Raises InvalidBatchSettings.
    """
    space = codeformat.estimated_space(shortest or "", case_sensitive=case_sensitive)
    try:
        codeformat.ensure_not_guessable(
            count=count, space=space, what="The shortest code's length and character classes"
        )
    except TooGuessable as exc:
        if not allow_weak_codes:
            raise InvalidBatchSettings(
                f"{exc} If the supplier's codes are what they are, import them with the explicit "
                "weak-codes override (--allow-weak-codes); the override is recorded."
            ) from None
        return {
            "weak_codes_override": True,
            "estimated_space_log10": round(math.log10(space), 1),
            "required_space_log10": round(math.log10(codeformat.min_code_space(count)), 1),
        }
    return {}
