"""Closing periods into statements, and each statement's lifecycle.

Closing (`close_statements`):
- One statement per agreement (merchant, partner, currency) and period, in order:
  the agreement row is locked while one period is closed, so two closers never
  build the same statement (the unique (agreement, period_start) is the backstop),
  and a second run finds the work done.
- A statement takes every entry of the agreement not yet on a statement that
  happened before the period's end. The lines are inserted first with one
  INSERT ... SELECT (entries recorded meanwhile are either in that set or land on the
  next statement); the unique entry of a line puts each entry on exactly one
  statement. Totals and the document are then read back from exactly those lines.
- A line that corrects an earlier statement points at it (`original_statement`): a
  reversal at the statement holding the entry it reverses, any other late entry at
  the statement whose period it happened in.
- opening = previous closing; closing = opening + total; totals are plain sums.
- The document is canonical JSON (RFC 8785) of the statement's fields, every line and
  the previous statement's hash, signed (Ed25519, detached JWS). The row never changes.

Lifecycle: confirm (pinned to content_sha256), disputes within the window, resolution
by merchant staff (accept: an adjustment entry; reject: a reason), auto-confirm past
the window, payments as entries. Every transition is an append-only StatementEvent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain

from django.db import connection, transaction
from django.db.models import Min, Sum
from django.utils import timezone

from partners.canonical import iso
from partners.exceptions import (
    ContentMismatch,
    DisputeWindowClosed,
    InvalidAgreementTerms,
    InvalidRequest,
    StatementInvalidState,
)
from partners.models import Agreement, Dispute, LedgerEntry, Statement, StatementEvent, StatementLine
from partners.money import exponent, format_minor
from partners.periods import period_end, period_start
from partners.services import ledger
from partners.signing import ChunkedSigner, sign_detached
from vouchers.webhooks.services import settlement_events

LIFECYCLE_ACTIONS = ("confirmed", "auto_confirmed", "disputed", "resolved")

logger = logging.getLogger("partners.statements")


class FutureCloseRefused(Exception):
    """A close `as_of` a future moment without allow_future."""


def _dump(value) -> bytes:
    """Canonical JSON for documents: for the strings, integers and nulls they hold, sorted
    keys without whitespace and UTF-8 is exactly RFC 8785 (tested against rfc8785)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# --- closing ---------------------------------------------------------------------


def close_statements(*, as_of: datetime | None = None, allow_future: bool = False) -> list[Statement]:
    """Close every period that ended at or before `as_of` (default now), for every agreement.

    Safe to run twice and concurrently. Raises FutureCloseRefused for a future as_of
    without allow_future.
    """
    now = timezone.now()
    as_of = as_of or now
    if as_of > now and not allow_future:
        raise FutureCloseRefused("as_of is in the future; pass allow_future for drills and tests")
    created: list[Statement] = []
    for agreement_id in Agreement.objects.order_by("pk").values_list("pk", flat=True):
        created += close_agreement(agreement_id=agreement_id, as_of=as_of)
    return created


def close_agreement(*, agreement_id: int, as_of: datetime) -> list[Statement]:
    """Close this agreement's due periods, one transaction per period."""
    created: list[Statement] = []
    while True:
        with transaction.atomic():
            agreement = Agreement.objects.select_for_update().get(pk=agreement_id)
            previous = (
                Statement.objects.filter(agreement=agreement)
                .defer("document")  # hundreds of MB for a large statement; only its hash is needed
                .order_by("-period_start")
                .first()
            )
            if previous is not None:
                start = previous.period_end
            else:
                first = LedgerEntry.objects.filter(agreement=agreement).aggregate(t=Min("occurred_at"))["t"]
                if first is None:
                    return created
                start = period_start(first, period=agreement.period, tz=agreement.timezone)
            end = period_end(start, period=agreement.period, tz=agreement.timezone)
            if end > as_of:
                return created
            stages: dict[str, float] = {}
            statement = _close_one(agreement, previous, start, end, stages)
            settlement_events.statement_issued(statement)  # in the close's transaction
            committing = time.perf_counter()
        stages["commit"] = time.perf_counter() - committing
        created.append(statement)
        logger.info(
            "closed statement %s: %d lines, %s",
            statement.pk,
            statement.line_count,
            ", ".join(f"{name} {seconds:.2f}s" for name, seconds in stages.items()),
            extra={"statement": str(statement.pk), "stages": stages},
        )


# The entries a statement takes, with the statement an entry corrects (if any).
_SELECT_ENTRIES = """
  SELECT e.id, e.seq, e.amount_minor,
         CASE
           WHEN e.reverses_id IS NOT NULL THEN
             (SELECT l2.statement_id FROM partners_statementline l2 WHERE l2.entry_id = e.reverses_id)
           WHEN e.occurred_at < %(start)s THEN
             (SELECT s.id FROM partners_statement s WHERE s.agreement_id = e.agreement_id
                AND s.period_start <= e.occurred_at AND e.occurred_at < s.period_end)
         END AS original_statement_id
  FROM partners_ledgerentry e
  WHERE e.agreement_id = %(agreement)s AND e.occurred_at < %(end)s
    AND NOT EXISTS (SELECT 1 FROM partners_statementline l WHERE l.entry_id = e.id)
"""

_INSERT_LINES = (
    f"WITH src AS ({_SELECT_ENTRIES}) "  # noqa: S608 (constants only)
    "INSERT INTO partners_statementline (statement_id, entry_id, line_no, original_statement_id) "
    "SELECT %(statement)s, src.id, ROW_NUMBER() OVER (ORDER BY src.seq), src.original_statement_id FROM src"
)
_COUNT_LINES = (
    "SELECT count(*), sum(e.amount_minor) FROM partners_statementline l "
    "JOIN partners_ledgerentry e ON e.id = l.entry_id WHERE l.statement_id = %(statement)s"
)

# PostgreSQL: the lines and their count and total in one statement. The selected entries
# are materialised once, inserted from there and summed from there (reading the new
# lines back joined to their entries was a second pass over a million rows). The parts
# of a WITH see one snapshot, so the look-up of a reversed entry's line sees earlier
# statements' lines only, as in the plain INSERT.
_INSERT_AND_COUNT_LINES = (
    f"WITH src AS MATERIALIZED ({_SELECT_ENTRIES}), "  # noqa: S608 (constants only)
    "inserted AS ("
    "INSERT INTO partners_statementline (statement_id, entry_id, line_no, original_statement_id) "
    "SELECT %(statement)s, src.id, ROW_NUMBER() OVER (ORDER BY src.seq), src.original_statement_id FROM src"
    ") SELECT count(*), sum(src.amount_minor) FROM src"
)

_READ_LINES = """
SELECT l.line_no, e.id, e.seq, e.kind, e.occurred_at, e.recorded_at, e.sku, e.source_type, e.source_id,
       e.code_last4, e.amount_minor, e.reverses_id, l.original_statement_id, e.hash
FROM partners_statementline l JOIN partners_ledgerentry e ON e.id = l.entry_id
WHERE l.statement_id = %s ORDER BY l.line_no
"""


def _uuid_param(value: uuid.UUID):
    return value if connection.vendor == "postgresql" else value.hex


def _dt_param(value: datetime):
    return connection.ops.adapt_datetimefield_value(value)


def _as_uuid(value) -> str | None:
    if value is None:
        return None
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


def _as_datetime(value) -> datetime:
    if isinstance(value, str):  # SQLite hands raw timestamps back as text
        value = datetime.fromisoformat(value)
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_fixed_timezone(0))
    return value


def line_document(row, currency: str) -> dict:
    """One line of a statement document (and of the API), from a _READ_LINES row."""
    (
        line_no,
        entry_id,
        seq,
        kind,
        occurred_at,
        recorded_at,
        sku,
        source_type,
        source_id,
        code_last4,
        amount_minor,
        reverses_id,
        original_statement_id,
        entry_hash,
    ) = row
    return {
        "line_no": line_no,
        "entry_id": entry_id,
        "seq": seq,
        "kind": kind,
        "occurred_at": iso(_as_datetime(occurred_at)),
        "recorded_at": iso(_as_datetime(recorded_at)),
        "sku": sku,
        "source_type": source_type,
        "source_id": source_id,
        "code_last4": code_last4,
        "amount": format_minor(amount_minor, currency),
        "amount_minor": amount_minor,
        "currency": currency,
        "reverses": reverses_id,
        "original_statement": _as_uuid(original_statement_id),
        "entry_hash": entry_hash,
    }


# --- the document's lines in SQL (PostgreSQL) ---------------------------------------
#
# On PostgreSQL the canonical JSON of each line is built by the database, byte for byte
# what line_document + _dump give (tests compare both on awkward values): keys in
# sorted order, strings through to_json (which escapes exactly as RFC 8785: \" \\ \b
# \f \n \r \t, other control characters as lowercase \u00xx, everything else as
# UTF-8) except those that never need escaping (a UUID, the kind), integers as digits,
# NULL as null, times as iso(). The lines stream from one COPY, one row per line, and
# Python joins them with commas in chunks instead of building a dict and a json.dumps
# per line.


def _json_str(expr: str) -> str:
    return f"coalesce(to_json({expr})::text, 'null')"


def _json_int(expr: str) -> str:
    return f"coalesce(({expr})::text, 'null')"


def _json_time(expr: str) -> str:
    # the quotes around the value are part of the format (\" is a literal quote)
    return f"""to_char({expr} AT TIME ZONE 'UTC', '\\"YYYY-MM-DD"T"HH24:MI:SS.US"Z\\""')"""


def _json_safe_str(expr: str) -> str:
    """A string that never needs escaping (a UUID's text, a constrained enum value)."""
    return f"""coalesce('"' || ({expr}) || '"', 'null')"""


def _json_amount(digits: int) -> str:
    """format_minor in SQL for a currency with `digits` minor digits."""
    if digits == 0:
        return """concat('"', e.amount_minor::text, '"')"""
    scale = 10**digits
    return (
        """concat('"', CASE WHEN e.amount_minor < 0 THEN '-' ELSE '' END,"""
        f" (abs(e.amount_minor) / {scale})::text, '.',"
        f""" lpad(mod(abs(e.amount_minor), {scale})::text, {digits}, '0'), '"')"""
    )


def _line_json_sql(currency: str) -> str:
    members = {
        "amount": _json_amount(exponent(currency)),
        "amount_minor": _json_int("e.amount_minor"),
        "code_last4": _json_str("e.code_last4"),
        "currency": "%(currency_json)s::text",
        "entry_hash": _json_str("e.hash"),
        "entry_id": _json_int("e.id"),
        "kind": _json_safe_str("e.kind"),  # one of four words (a check constraint)
        "line_no": _json_int("l.line_no"),
        "occurred_at": _json_time("e.occurred_at"),
        "original_statement": _json_safe_str("l.original_statement_id::text"),
        "recorded_at": _json_time("e.recorded_at"),
        "reverses": _json_int("e.reverses_id"),
        "seq": _json_int("e.seq"),
        "sku": _json_str("e.sku"),
        "source_id": _json_str("e.source_id"),
        "source_type": _json_str("e.source_type"),
    }
    assert list(members) == sorted(members)  # canonical key order
    # concat() builds the line in one allocation (a chain of || copies it at every step).
    parts = []
    for i, (key, sql) in enumerate(members.items()):
        parts += [f"""'{"{" if i == 0 else ","}"{key}":'""", sql]
    return "concat(" + ", ".join([*parts, "'}'"]) + ")"


def _lines_copy_sql(currency: str) -> str:
    # One query in line order, its rows streamed by COPY: the server builds rows ahead of
    # the reader (and in parallel workers, which see the closing transaction's lines), and
    # Python receives bytes without a str per line. CSV with a delimiter and a quote
    # character that the JSON never holds raw (to_json escapes every control character)
    # leaves each line's bytes unquoted and unescaped, one per row, ended by "\n".
    return (
        f"COPY (SELECT {_line_json_sql(currency)} "  # noqa: S608 (constants only)
        "FROM partners_statementline l JOIN partners_ledgerentry e ON e.id = l.entry_id "
        "WHERE l.statement_id = %(statement)s ORDER BY l.line_no) "
        "TO STDOUT (FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01')"
    )


def _set_local(cursor, settings: dict[str, str]) -> None:
    """Planner settings for the rest of the transaction (SET LOCAL)."""
    cursor.execute(
        "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in settings),
        [value for pair in settings.items() for value in pair],
    )


def document_line_chunks(statement_id: uuid.UUID, currency: str, *, chunk: int = 5000) -> Iterator[bytes]:
    """The canonical JSON of the statement's lines in order, joined with commas, as byte
    chunks of `chunk` lines."""
    if connection.vendor == "postgresql":
        params = {"statement": statement_id, "currency_json": _dump(currency).decode()}
        with transaction.atomic(), connection.cursor() as cursor:
            # The lines of a statement being closed have no statistics yet: the planner
            # expects a few rows and sorts the built JSON (hundreds of MB, spilled to disk,
            # none of it sent before all is sorted). The (statement, line_no) index is
            # already in line order: read in parallel and merged in order, rows stream.
            names = ["enable_sort", "enable_bitmapscan", "min_parallel_index_scan_size"]
            cursor.execute("SELECT " + ", ".join(f"current_setting('{name}')" for name in names))
            before = cursor.fetchone()
            _set_local(cursor, dict(zip(names, ["off", "off", "0"], strict=True)))
            # COPY takes no bound parameters: the two values are quoted into its text.
            import psycopg

            query = psycopg.ClientCursor(connection.connection).mogrify(_lines_copy_sql(currency), params)
            with cursor.cursor.copy(query) as copy:
                rows: list = []
                first = True
                for row in copy:  # one line and its "\n" per row
                    rows.append(row)
                    if len(rows) == chunk:
                        yield (b"" if first else b",") + b"".join(rows)[:-1].replace(b"\n", b",")
                        rows = []
                        first = False
                if rows:
                    yield (b"" if first else b",") + b"".join(rows)[:-1].replace(b"\n", b",")
            _set_local(cursor, dict(zip(names, before, strict=True)))
        return
    first = True
    with connection.chunked_cursor() as cursor:
        cursor.execute(_READ_LINES, [_uuid_param(statement_id)])
        while rows := cursor.fetchmany(chunk):
            parts = [_dump(line_document(row, currency)) for row in rows]
            yield (b"" if first else b",") + b",".join(parts)
            first = False


# Documents up to this size are signed in memory by `cryptography`; larger ones are
# spooled to a temporary file and signed from it in chunks (see partners.signing).
SIGN_IN_MEMORY_MAX = 8 * 1024 * 1024
_SPOOL_CHUNK = 3 * 1024 * 1024


def _file_chunks(spool) -> Iterator[bytes]:
    spool.seek(0)
    while chunk := spool.read(_SPOOL_CHUNK):
        yield chunk


CLOSE_WORK_MEM = "64MB"


def _close_one(
    agreement: Agreement, previous: Statement | None, start: datetime, end: datetime, stages: dict
) -> Statement:
    """Build, sign and store one statement; `stages` receives the seconds each step took."""
    statement_id = uuid.uuid4()
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        stages[name] = stages.get(name, 0.0) + now - clock
        clock = now

    params = {
        "statement": _uuid_param(statement_id),
        "start": _dt_param(start),
        "end": _dt_param(end),
        "agreement": agreement.pk,
    }
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Sorting a million entries by seq fits in memory with this, for this transaction
            # only (the default 4 MB spills it to disk).
            cursor.execute("SELECT set_config('work_mem', %s, true)", [CLOSE_WORK_MEM])
            cursor.execute(_INSERT_AND_COUNT_LINES, params)
        else:
            cursor.execute(_INSERT_LINES, params)
            cursor.execute(_COUNT_LINES, params)
        count, total = cursor.fetchone()
    total = int(total or 0)
    lap("insert lines")
    issued_at = timezone.now()
    opening = previous.closing_minor if previous else 0
    number = (previous.number + 1) if previous else 1
    fields = {
        "id": str(statement_id),
        "number": number,
        "agreement": agreement.pk,
        "merchant": agreement.merchant.slug,
        "partner": agreement.partner.slug,
        "currency": agreement.currency,
        "timezone": agreement.timezone,
        "period": agreement.period,
        "period_start": iso(start),
        "period_end": iso(end),
        "opening_balance": format_minor(opening, agreement.currency),
        "opening_minor": opening,
        "total": format_minor(total, agreement.currency),
        "total_minor": total,
        "closing_balance": format_minor(opening + total, agreement.currency),
        "closing_minor": opening + total,
        "line_count": count,
        "issued_at": iso(issued_at),
        "dispute_deadline": iso(issued_at + timedelta(days=agreement.dispute_window_days)),
    }
    previous_sha = previous.content_sha256 if previous else None
    # The document is written once, to a temporary file, and hashed as it is written:
    # a statement of a million lines is several hundred MB and is never held whole.
    # Keys in canonical order: "lines" < "previous_statement_sha256" < "statement".
    content = hashlib.sha256()
    signer = ChunkedSigner()  # its first pass runs as the document is written
    size = 0
    with tempfile.TemporaryFile() as spool:
        tail = b'],"previous_statement_sha256":%s,"statement":%s}' % (_dump(previous_sha), _dump(fields))
        for part in chain([b'{"lines":['], document_line_chunks(statement_id, agreement.currency), [tail]):
            spool.write(part)
            content.update(part)
            signer.update(part)
            size += len(part)
        spool.flush()
        lap("document")
        row = {
            "id": statement_id,
            "agreement_id": agreement.pk,
            "merchant_id": agreement.merchant_id,
            "partner_id": agreement.partner_id,
            "number": fields["number"],
            "currency": agreement.currency,
            "timezone": agreement.timezone,
            "period_start": start,
            "period_end": end,
            "opening_minor": opening,
            "total_minor": total,
            "closing_minor": opening + total,
            "line_count": count,
            "issued_at": issued_at,
            "dispute_deadline": issued_at + timedelta(days=agreement.dispute_window_days),
            "previous_id": previous.pk if previous else None,
            "previous_sha256": previous_sha or "",
            "content_sha256": content.hexdigest(),
            "kid": signer.kid,
        }
        if connection.vendor == "postgresql":
            # The signer's second pass reads the document as it is streamed into the row,
            # and the signature, the row's last field, follows it.
            signer.second_pass()
            _copy_statement_row(row, spool, size, signer)
            lap("sign and store")
            return Statement.objects.defer("document").get(pk=statement_id)
        spool.seek(0)
        if size <= SIGN_IN_MEMORY_MAX:
            document = spool.read()
            signature, _ = sign_detached(document)
        else:
            signature, _ = signer.finish(_file_chunks(spool))
            spool.seek(0)
            document = spool.read()
        lap("sign")
        statement = Statement.objects.create(document=document, signature=signature, **row)
        lap("store")
        return statement


# --- storing the statement row on PostgreSQL without the document in memory -----------
#
# One row in COPY's binary format (PGCOPY header, field count, then each field as a
# length and its bytes), the document streamed from the spool file in chunks: no
# query text with the document escaped in it, and no second copy of it in memory.

_PG_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.get_fixed_timezone(0))


def _copy_field(field, value) -> bytes:
    if value is None:
        return struct.pack("!i", -1)
    kind = field.target_field.get_internal_type() if field.is_relation else field.get_internal_type()
    if kind == "UUIDField":
        data = value.bytes
    elif kind in ("BigIntegerField", "BigAutoField"):
        data = struct.pack("!q", value)
    elif kind in ("IntegerField", "PositiveIntegerField", "AutoField"):
        data = struct.pack("!i", value)
    elif kind in ("CharField", "TextField"):
        data = value.encode("utf-8")
    elif kind == "DateTimeField":
        delta = value - _PG_EPOCH
        data = struct.pack("!q", (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds)
    else:
        raise TypeError(f"no COPY encoding for {kind}")
    return struct.pack("!i", len(data)) + data


def _copy_statement_row(row: dict, spool, size: int, signer: ChunkedSigner) -> None:
    """COPY the row: the document first, streamed from the spool through the signer's
    second pass, then the other fields, then the signature that pass completes."""
    by_column = {f.column: f for f in Statement._meta.concrete_fields}
    columns = ["document", *row, "signature"]
    if set(columns) != set(by_column) or len(columns) != len(by_column):
        raise RuntimeError("statement columns changed; update _close_one")
    sql = "COPY partners_statement ({}) FROM STDIN (FORMAT binary)".format(
        ", ".join(connection.ops.quote_name(c) for c in columns)
    )
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        head = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!iih", 0, 0, len(columns))
        copy.write(head + struct.pack("!i", size))  # the document's length, then its bytes
        for chunk in _file_chunks(spool):
            copy.write(chunk)
            signer.update_again(chunk)
        signature, _ = signer.signature()
        fields = b"".join(_copy_field(by_column[c], v) for c, v in row.items())
        copy.write(fields + _copy_field(by_column["signature"], signature) + struct.pack("!h", -1))


DOCUMENT_CHUNK_BYTES = 16 * 1024 * 1024


def document_chunks(statement: Statement, *, chunk: int = DOCUMENT_CHUNK_BYTES):
    """The signed document's bytes in slices read from the database, never whole.

    (size, iterator of bytes). A statement of a million lines has a document of several
    hundred MB: served to a partner, it streams in slices of `chunk` bytes.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT length(document) FROM partners_statement WHERE id = %s", [_uuid_param(statement.pk)]
        )
        size = int(cursor.fetchone()[0] or 0)

    def slices():
        for start in range(0, size, chunk):
            with connection.cursor() as cursor:
                cursor.execute(  # substr is 1-based, on bytea and on SQLite blobs alike
                    "SELECT substr(document, %s, %s) FROM partners_statement WHERE id = %s",
                    [start + 1, chunk, _uuid_param(statement.pk)],
                )
                yield bytes(cursor.fetchone()[0])

    return size, slices()


def iter_lines(statement: Statement, *, chunk: int = 5000):
    """The statement's lines as documents, streamed from the database in line order."""
    with connection.chunked_cursor() as cursor:  # server-side on PostgreSQL: rows stream
        cursor.execute(_READ_LINES, [_uuid_param(statement.pk)])
        while rows := cursor.fetchmany(chunk):
            for row in rows:
                yield line_document(row, statement.currency)


# --- status ------------------------------------------------------------------------


@dataclass(frozen=True)
class StatementState:
    status: str
    payment_status: str
    paid_minor: int


def lifecycle_status(statement: Statement, *, now: datetime | None = None) -> str:
    """issued | confirmed | disputed | resolved; unanswered past the window counts as confirmed."""
    last = (
        StatementEvent.objects.filter(statement=statement, action__in=LIFECYCLE_ACTIONS)
        .order_by("-id")
        .values_list("action", flat=True)
        .first()
    )
    if last is None:
        return "confirmed" if (now or timezone.now()) > statement.dispute_deadline else "issued"
    return "confirmed" if last == "auto_confirmed" else last


def paid_minor(statement: Statement) -> int:
    """How much was paid towards the statement's total, in its direction (payments are entries)."""
    paid = (
        LedgerEntry.objects.filter(refers_to_statement=statement, kind=LedgerEntry.Kind.PAYMENT).aggregate(
            s=Sum("amount_minor")
        )["s"]
        or 0
    )
    return -paid if statement.total_minor >= 0 else paid


def payment_status(statement: Statement) -> str:
    paid = paid_minor(statement)
    due = abs(statement.total_minor)
    if due == 0 or paid >= due:
        return "paid"
    return "partially_paid" if paid > 0 else "unpaid"


def _lock(statement: Statement) -> Statement:
    return Statement.objects.select_for_update().select_related("agreement").get(pk=statement.pk)


def _event(statement: Statement, action: str, actor: str, **details) -> StatementEvent:
    return StatementEvent.objects.create(statement=statement, action=action, actor=actor, details=details)


# --- partner actions ---------------------------------------------------------------


@transaction.atomic
def confirm_statement(*, statement: Statement, content_sha256: str, actor: str) -> Statement:
    """The partner accepts exactly these bytes. Raises ContentMismatch, StatementInvalidState."""
    statement = _lock(statement)
    if content_sha256 != statement.content_sha256:
        raise ContentMismatch("content_sha256 is not this statement's; fetch the document again.")
    status = lifecycle_status(statement)
    if status != "issued":
        raise StatementInvalidState(f"A statement in status {status} cannot be confirmed.")
    _event(statement, "confirmed", actor, content_sha256=content_sha256)
    return statement


@transaction.atomic
def open_dispute(
    *,
    statement: Statement,
    reason: str,
    actor: str,
    lines: list[int] | None = None,
    claimed_amount_minor: int | None = None,
) -> Dispute:
    """A partner disputes the statement or some of its lines, within the window.

    Raises StatementInvalidState (confirmed), DisputeWindowClosed, InvalidAgreementTerms (unknown lines).
    """
    statement = _lock(statement)
    last = (
        StatementEvent.objects.filter(statement=statement, action__in=LIFECYCLE_ACTIONS)
        .order_by("-id")
        .values_list("action", flat=True)
        .first()
    )
    if last in ("confirmed", "auto_confirmed"):
        raise StatementInvalidState("A confirmed statement cannot be disputed.")
    if timezone.now() > statement.dispute_deadline:
        raise DisputeWindowClosed(f"Disputes were possible until {iso(statement.dispute_deadline)}.")
    lines = sorted(set(lines or []))
    if lines:
        known = set(
            StatementLine.objects.filter(statement=statement, line_no__in=lines).values_list(
                "line_no", flat=True
            )
        )
        if unknown := [n for n in lines if n not in known]:
            raise InvalidRequest(
                f"The statement has no lines {unknown}.", errors={"lines": [str(n) for n in unknown]}
            )
    dispute = Dispute.objects.create(
        statement=statement, reason=reason, lines=lines, claimed_amount_minor=claimed_amount_minor
    )
    _event(
        statement,
        "disputed",
        actor,
        dispute=str(dispute.pk),
        lines=lines,
        claimed_amount_minor=claimed_amount_minor,
    )
    return dispute


# --- merchant staff actions ------------------------------------------------------


@transaction.atomic
def resolve_dispute(
    *, dispute: Dispute, accept: bool, reason: str, actor: str, amount_minor: int | None = None
) -> Dispute:
    """Accept (an adjustment entry, on a later statement) or reject (a reason) an open dispute.

    The statement becomes `resolved` once no dispute of it is open.
    Raises StatementInvalidState (not open), InvalidAgreementTerms (accept without amount).
    """
    statement = _lock(dispute.statement)
    dispute = Dispute.objects.select_for_update().get(pk=dispute.pk)
    if dispute.status != Dispute.Status.OPEN:
        raise StatementInvalidState(f"The dispute is already {dispute.status}.")
    now = timezone.now()
    if accept:
        amount = dispute.claimed_amount_minor if amount_minor is None else amount_minor
        if amount is None:
            raise InvalidAgreementTerms("Accepting a dispute needs an amount (none was claimed).")
        (entry,) = ledger.append(
            [
                ledger.PendingEntry(
                    partner_id=statement.partner_id,
                    merchant_id=statement.merchant_id,
                    agreement_id=statement.agreement_id,
                    kind=LedgerEntry.Kind.ADJUSTMENT,
                    currency=statement.currency,
                    amount_minor=amount,
                    source_type="dispute",
                    source_id=str(dispute.pk),
                    source_key=f"dispute:{dispute.pk}",
                    occurred_at=now,
                    refers_to_statement_id=statement.pk,
                    memo=reason[:500],
                    actor=actor,
                )
            ]
        )
        dispute.adjustment = entry
        dispute.status = Dispute.Status.ACCEPTED
    else:
        dispute.status = Dispute.Status.REJECTED
    dispute.resolution_reason = reason
    dispute.resolved_at = now
    dispute.save()
    _event(
        statement,
        f"dispute_{dispute.status}",
        actor,
        dispute=str(dispute.pk),
        reason=reason[:500],
        adjustment=dispute.adjustment_id,
    )
    if not statement.disputes.filter(status=Dispute.Status.OPEN).exists():
        _event(statement, "resolved", actor)
    settlement_events.dispute_resolved(dispute, statement=statement)
    return dispute


@transaction.atomic
def record_payment(
    *, statement: Statement, amount_minor: int, actor: str, reference: str = ""
) -> LedgerEntry:
    """A payment towards the statement's total (positive, in the direction owed), as an entry.

    Raises InvalidAgreementTerms for a non-positive amount or a statement with nothing due.
    """
    statement = _lock(statement)
    if amount_minor <= 0 or statement.total_minor == 0:
        raise InvalidAgreementTerms("A payment is a positive amount towards a statement with something due.")
    signed = -amount_minor if statement.total_minor > 0 else amount_minor
    (entry,) = ledger.append(
        [
            ledger.PendingEntry(
                partner_id=statement.partner_id,
                merchant_id=statement.merchant_id,
                agreement_id=statement.agreement_id,
                kind=LedgerEntry.Kind.PAYMENT,
                currency=statement.currency,
                amount_minor=signed,
                source_type="payment",
                source_id=str(uuid.uuid4()),
                source_key=f"payment:{uuid.uuid4()}",
                occurred_at=timezone.now(),
                refers_to_statement_id=statement.pk,
                memo=reference[:500],
                actor=actor,
            )
        ]
    )
    _event(
        statement,
        "payment_recorded",
        actor,
        entry=entry.pk,
        amount_minor=amount_minor,
        payment_status=payment_status(statement),
    )
    return entry


def auto_confirm_due(*, now: datetime | None = None) -> int:
    """Record `auto_confirmed` for unanswered statements past their window. Safe twice."""
    now = now or timezone.now()
    count = 0
    for statement in Statement.objects.filter(dispute_deadline__lt=now).exclude(
        events__action__in=LIFECYCLE_ACTIONS
    ):
        with transaction.atomic():
            locked = _lock(statement)
            if not StatementEvent.objects.filter(statement=locked, action__in=LIFECYCLE_ACTIONS).exists():
                _event(locked, "auto_confirmed", "system")
                count += 1
    return count
