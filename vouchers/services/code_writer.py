"""Writing sealed codes into the codes table, fast, inside the caller's transaction.

Used by generation and import. On PostgreSQL rows go in with COPY (binary format);
elsewhere with multi-row INSERTs. The plaintext never reaches this module's output:
it is sealed in `seal_code` and dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from vouchers import crypto
from vouchers.models import Code

COPY_COLUMNS = (
    "batch_id", "ciphertext", "nonce", "key_id", "blind_index", "last4", "serial",
    "expires_at", "state", "state_changed_at",
)
COPY_TYPES = ("int8", "bytea", "bytea", "varchar", "bytea", "varchar", "varchar",
              "timestamptz", "varchar", "timestamptz")


@dataclass(frozen=True, slots=True)
class SealedCode:
    blind_index: bytes
    ciphertext: bytes
    nonce: bytes
    key_id: str
    last4: str
    serial: str | None = None
    expires_at: datetime | None = None


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
        key_id=sealed.key_id, last4=normalised[-4:], serial=serial or None,
        expires_at=expires_at,
    )


def write_codes(*, batch_id: int, rows: Iterable[SealedCode], now: datetime) -> int:
    """Insert sealed rows as available codes of `batch_id`; returns how many.

    Raises IntegrityError if a blind index is already stored (the unique index is the
    last word on duplicates).
    """
    if connection.vendor == "postgresql":
        return _copy_rows(batch_id=batch_id, rows=rows, now=now)
    objs = [
        Code(
            batch_id=batch_id, ciphertext=r.ciphertext, nonce=r.nonce, key_id=r.key_id,
            blind_index=r.blind_index, last4=r.last4, serial=r.serial, expires_at=r.expires_at,
            state=Code.State.AVAILABLE, state_changed_at=now,
        )
        for r in rows
    ]
    Code.objects.bulk_create(objs, batch_size=2000)
    return len(objs)


def _copy_rows(*, batch_id: int, rows: Iterable[SealedCode], now: datetime) -> int:
    written = 0
    table = Code._meta.db_table
    with connection.cursor() as cursor:
        sql = f"COPY {table} ({', '.join(COPY_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        with cursor.cursor.copy(sql) as copy:
            copy.set_types(COPY_TYPES)
            available = Code.State.AVAILABLE.value
            for r in rows:
                copy.write_row((
                    batch_id, r.ciphertext, r.nonce, r.key_id, r.blind_index, r.last4,
                    r.serial, r.expires_at, available, now,
                ))
                written += 1
    return written
