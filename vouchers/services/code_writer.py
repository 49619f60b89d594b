"""Writing sealed codes into the codes table, fast, inside the caller's transaction.

Used by generation and import. On PostgreSQL rows go in with COPY (binary format);
elsewhere with multi-row INSERTs in bounded chunks. Both stream: rows are pulled
from the caller's iterable as they are written, so memory does not grow with the
number of rows. The plaintext never reaches this module's output: it is sealed and
dropped.

Database errors (a blind index already stored, above all) come out as Django's
`IntegrityError`, also from COPY, so callers can catch one exception on every database.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from django.conf import settings
from django.db import connection

from vouchers import crypto
from vouchers.models import Code

COPY_COLUMNS = (
    "batch_id", "ciphertext", "nonce", "key_id", "blind_index", "last4", "serial",
    "expires_at", "state", "state_changed_at", "is_canary",
)
COPY_TYPES = ("int8", "bytea", "bytea", "varchar", "bytea", "varchar", "varchar",
              "timestamptz", "varchar", "timestamptz", "bool")
# The fields of one row handed to `write_code_rows`, in this order.
CODE_ROW_FIELDS = ("ciphertext", "nonce", "key_id", "blind_index", "last4", "serial", "expires_at")
INSERT_CHUNK = 2_000
_NONCE_POOL = 4_096


@dataclass(frozen=True, slots=True)
class SealedCode:
    blind_index: bytes
    ciphertext: bytes
    nonce: bytes
    key_id: str
    last4: str
    serial: str | None = None
    expires_at: datetime | None = None


def display_tail(normalised: str) -> str:
    """The characters kept in clear for display (`Code.last4`): the last 4 of a long code.

    A short code keeps at most a quarter of its characters in clear, so that the tail
    never gives away a weak supplier code (a 4-character code would otherwise be stored
    whole, in clear).
    """
    return normalised[-min(4, max(1, len(normalised) // 4)):]


def seal_code(
    *, display: str, normalised: str, batch_id: int, serial: str | None = None,
    expires_at: datetime | None = None, blind_index: bytes | None = None,
) -> SealedCode:
    """Seal one code for `batch_id`: the display form is encrypted (it is what the customer
    receives), the normalised form is only hashed into the blind index."""
    index = blind_index if blind_index is not None else crypto.blind_index(normalised)
    sealed = crypto.seal(display, batch_id=batch_id, blind_index=index)
    return SealedCode(
        blind_index=index, ciphertext=sealed.ciphertext, nonce=sealed.nonce,
        key_id=sealed.key_id, last4=display_tail(normalised), serial=serial or None,
        expires_at=expires_at,
    )


class BatchSealer:
    """Seals many codes for one batch: the same bytes as `crypto.blind_index`/`crypto.seal`,
    with the per-call overhead paid once.

    The HMAC key's inner and outer pads are hashed once and copied per code, nonces come
    from one `os.urandom` call per 4,096 codes, and the cipher and associated-data prefix
    are looked up once. The constructor checks itself against `vouchers.crypto` and falls
    back to it if the two ever disagree (say the blind-index scheme changes there).
    """

    def __init__(self, *, batch_id: int) -> None:
        ring = crypto.key_ring()
        self.key_id = ring.primary_id
        self._encrypt = ring.cipher(ring.primary_id).encrypt
        self._batch_id = batch_id
        prefix = crypto.associated_data(batch_id, b"")
        self._aad_prefix: bytes | None = prefix
        if crypto.associated_data(batch_id, b"\x01") != prefix + b"\x01":
            self._aad_prefix = None
        key = bytes(settings.VOUCHER_INDEX_KEY)
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
        probe = "SELF-CHECK-0123"
        if self._hmac(probe) != crypto.blind_index(probe):
            self.blind_index = crypto.blind_index  # type: ignore[method-assign]
        self._nonces = b""
        self._next_nonce = 0

    def _hmac(self, normalised: str) -> bytes:
        inner = self._inner.copy()
        inner.update(normalised.encode("utf-8"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def blind_index(self, normalised: str) -> bytes:
        """HMAC-SHA256 of the normalised code under the index key (as `crypto.blind_index`)."""
        return self._hmac(normalised)

    def seal(self, display: str, blind_index: bytes) -> tuple[bytes, bytes]:
        """(ciphertext, nonce) of `display` bound to this batch and `blind_index`."""
        at = self._next_nonce
        if at >= len(self._nonces):
            self._nonces = os.urandom(crypto.NONCE_BYTES * _NONCE_POOL)
            at = 0
        nonce = self._nonces[at : at + crypto.NONCE_BYTES]
        self._next_nonce = at + crypto.NONCE_BYTES
        aad = (
            self._aad_prefix + blind_index if self._aad_prefix is not None
            else crypto.associated_data(self._batch_id, blind_index)
        )
        return self._encrypt(nonce, display.encode("utf-8"), aad), nonce


def write_codes(*, batch_id: int, rows: Iterable[SealedCode], now: datetime) -> int:
    """Insert sealed rows as available codes of `batch_id`; returns how many.

    Raises IntegrityError if a blind index is already stored (the unique index is the
    last word on duplicates).
    """
    return write_code_rows(
        batch_id=batch_id,
        rows=(
            (r.ciphertext, r.nonce, r.key_id, r.blind_index, r.last4, r.serial, r.expires_at)
            for r in rows
        ),
        now=now,
    )


def write_code_rows(*, batch_id: int, rows: Iterable[tuple], now: datetime) -> int:
    """Insert rows given as tuples in CODE_ROW_FIELDS order as available codes of `batch_id`.

    Streams: rows are pulled from `rows` while they are written. Returns how many.
    Raises IntegrityError if a blind index is already stored.
    """
    batch_id, state, stamp, canary = code_row_constants(batch_id=batch_id, now=now)
    return write_full_code_rows(rows=((batch_id, *row, state, stamp, canary) for row in rows))


def code_row_constants(*, batch_id: int, now: datetime) -> tuple[int, str, object, bool]:
    """(batch_id, state, state_changed_at, is_canary) of a load of available codes, ready for
    `write_full_code_rows` on the database in use (the time adapted where it must be)."""
    stamp = now if connection.vendor == "postgresql" else connection.ops.adapt_datetimefield_value(now)
    return batch_id, Code.State.AVAILABLE.value, stamp, False


def write_full_code_rows(*, rows: Iterable[tuple]) -> int:
    """Insert rows given whole, in COPY_COLUMNS order (ends from `code_row_constants`).

    The fastest way in for a caller that builds its rows itself (the import). Streams;
    returns how many. Raises IntegrityError if a blind index is already stored.
    """
    table = Code._meta.db_table
    if connection.vendor == "postgresql":
        return copy_rows(table=table, columns=COPY_COLUMNS, types=COPY_TYPES, rows=rows)
    return insert_rows(
        table=table, columns=COPY_COLUMNS, rows=rows, datetime_at=(COPY_COLUMNS.index("expires_at"),)
    )


def copy_rows(*, table: str, columns: Sequence[str], types: Sequence[str], rows: Iterable[tuple]) -> int:
    """PostgreSQL: stream `rows` into `table` with one binary COPY; returns how many.

    `table`, `columns` and `types` are identifiers from code, never from input.
    Raises Django's IntegrityError / DatabaseError.
    """
    from psycopg.types.string import BytesBinaryDumper

    written = 0
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    with connection.cursor() as cursor, connection.wrap_database_errors:
        # bytea by the C dumper of `bytes` (for this cursor only): the default one for the
        # bytea type also accepts DB-API Binary wrappers, in Python, at twice the cost per row.
        cursor.cursor.adapters.register_dumper(bytes, BytesBinaryDumper)
        with cursor.cursor.copy(sql) as copy:
            copy.set_types(list(types))
            write_row = copy.write_row
            for row in rows:
                write_row(row)
                written += 1
    return written


def insert_rows(
    *, table: str, columns: Sequence[str], rows: Iterable[tuple], datetime_at: Sequence[int] = (),
    chunk: int = INSERT_CHUNK,
) -> int:
    """Any database: stream `rows` into `table` with executemany in chunks; returns how many.

    Values at the positions `datetime_at` are adapted as the ORM would store them (other
    datetimes must come adapted). Raises IntegrityError.
    """
    adapt = connection.ops.adapt_datetimefield_value
    placeholders = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"  # noqa: S608 (identifiers from code)
    written = 0
    rows = iter(rows)
    with connection.cursor() as cursor:
        while batch := list(islice(rows, chunk)):
            if datetime_at:
                batch = [_adapted(row, datetime_at, adapt) for row in batch]
            cursor.executemany(sql, batch)
            written += len(batch)
    return written


def _adapted(row: tuple, positions: Sequence[int], adapt) -> tuple:
    if all(row[i] is None for i in positions):
        return row
    cells = list(row)
    for i in positions:
        if cells[i] is not None:
            cells[i] = adapt(cells[i])
    return tuple(cells)
