"""Re-encrypting stored codes under the key ring's primary key.

Rotation procedure: add the new key to VOUCHER_ENCRYPTION_KEYS, make it
VOUCHER_PRIMARY_KEY_ID, deploy (new codes are sealed under it from then on), run
`manage.py rotate_keys`, and remove the old key only once nothing is left under it.

Safe while the service runs:
- each chunk is its own short transaction, so locks are held for milliseconds;
- rows are locked with SELECT ... FOR UPDATE SKIP LOCKED, so a code being issued or
  redeemed right now is skipped (and picked up by a later pass), never waited on;
- only `ciphertext`, `nonce` and `key_id` are written, by an UPDATE conditional on
  the old key id, so a concurrent state change is never overwritten and a row that
  another rotation already moved is not written twice.

Resumable: work is "every code not under the primary key", so a rerun after an
interruption simply continues. The associated data (batch id + blind index) does
not change, so the new ciphertext stays bound to the same row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import Count

from vouchers import crypto
from vouchers.crypto import UnknownKeyId
from vouchers.models import Code
from vouchers.services.events import record_event

DEFAULT_CHUNK_SIZE = 2_000
MAX_PASSES = 5


@dataclass
class RotationReport:
    """What a rotation run did. `remaining` > 0 means rows were locked by live traffic
    (or the run was limited): running again finishes them."""

    primary_key_id: str
    rotated_by_key: Counter = field(default_factory=Counter)
    chunks: int = 0
    already_rotated: int = 0
    last_id: int | None = None
    remaining: int = 0

    @property
    def rotated(self) -> int:
        return sum(self.rotated_by_key.values())


def pending_by_key() -> dict[str, int]:
    """Codes not yet under the primary key, counted per key id (sorted by key id)."""
    primary = crypto.key_ring().primary_id
    rows = (
        Code.objects.exclude(key_id=primary).values("key_id").annotate(n=Count("id")).order_by("key_id")
    )
    return {row["key_id"]: row["n"] for row in rows}


def ensure_keys_known(pending: dict[str, int]) -> None:
    """Refuse to start when any stored code names a key id the ring does not hold.

    Raises UnknownKeyId naming every such key id and how many codes use it.
    """
    ring = crypto.key_ring()
    unknown = {}
    for key_id, n in pending.items():
        try:
            ring.cipher(key_id)
        except UnknownKeyId:
            unknown[key_id] = n
    if unknown:
        listed = ", ".join(f"{key_id!r} ({n:,} codes)" for key_id, n in unknown.items())
        raise UnknownKeyId(
            f"key id(s) {listed} are not in VOUCHER_ENCRYPTION_KEYS; add them to the key ring "
            "before rotating (nothing was re-encrypted)"
        )


def rotate_chunk(*, after_id: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> tuple[Counter, int, int | None]:
    """Re-encrypt up to `chunk_size` codes with pk > after_id that are not under the primary key.

    One short transaction. Returns (rotated per old key id, rows already moved by someone
    else, last pk looked at or None when nothing is left after `after_id`).
    Raises UnknownKeyId or CodeIntegrityError (the chunk is rolled back, earlier chunks stay).
    """
    ring = crypto.key_ring()
    primary = ring.primary_id
    rotated: Counter = Counter()
    already = 0
    with transaction.atomic(durable=True):
        rows = list(
            Code.objects.filter(pk__gt=after_id)
            .exclude(key_id=primary)
            .order_by("pk")
            .select_for_update(skip_locked=True, of=("self",))
            .only("id", "batch_id", "ciphertext", "nonce", "key_id", "blind_index")[:chunk_size]
        )
        if not rows:
            return rotated, already, None
        resealed = []
        for row in rows:
            plaintext = crypto.decrypt_code(row)
            sealed = crypto.seal(plaintext, batch_id=row.batch_id, blind_index=bytes(row.blind_index))
            resealed.append((row.pk, row.key_id, sealed))
        for old_key_id in _write_resealed(resealed, primary=primary):
            rotated[old_key_id] += 1
        already = len(rows) - sum(rotated.values())
        if rotated:
            record_event(
                action="codes_reencrypted", actor="system",
                details={
                    "to_key_id": primary, "from_key_ids": dict(rotated),
                    "first_id": rows[0].pk, "last_id": rows[-1].pk,
                },
            )
    return rotated, already, rows[-1].pk


def _write_resealed(resealed: list[tuple[int, str, crypto.Sealed]], *, primary: str) -> list[str]:
    """Write new ciphertexts where the row is still under its old key; returns the old key
    id of every row written. One statement on PostgreSQL, one per row elsewhere."""
    table = Code._meta.db_table
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                UPDATE {table} AS c
                SET ciphertext = v.ciphertext, nonce = v.nonce, key_id = %s
                FROM unnest(%s::bigint[], %s::varchar[], %s::bytea[], %s::bytea[])
                     AS v(id, old_key_id, ciphertext, nonce)
                WHERE c.id = v.id AND c.key_id = v.old_key_id
                RETURNING v.old_key_id
                """,  # noqa: S608 - the table name is the model's, never input
                [
                    primary,
                    [pk for pk, _, _ in resealed],
                    [old for _, old, _ in resealed],
                    [s.ciphertext for _, _, s in resealed],
                    [s.nonce for _, _, s in resealed],
                ],
            )
            return [row[0] for row in cursor.fetchall()]
    written = []
    for pk, old_key_id, sealed in resealed:
        if Code.objects.filter(pk=pk, key_id=old_key_id).update(
            ciphertext=sealed.ciphertext, nonce=sealed.nonce, key_id=sealed.key_id
        ):
            written.append(old_key_id)
    return written


def rotate_keys(
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    after_id: int = 0,
    max_chunks: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> RotationReport:
    """Re-encrypt every code not under the primary key, chunk by chunk, in pk order.

    After a pass, rows skipped because live traffic held their lock are retried in
    another pass (at most MAX_PASSES). `max_chunks` stops early (the rest stays for
    the next run). Raises UnknownKeyId before any work if a stored key id is missing
    from the ring, and UnknownKeyId/CodeIntegrityError if one shows up mid-run.
    """
    if chunk_size < 1:
        raise ValueError("chunk size must be at least 1")
    report = RotationReport(primary_key_id=crypto.key_ring().primary_id)
    ensure_keys_known(pending_by_key())
    start = after_id
    for _ in range(MAX_PASSES):
        cursor = start
        rotated_this_pass = 0
        while max_chunks is None or report.chunks < max_chunks:
            rotated, already, last_id = rotate_chunk(after_id=cursor, chunk_size=chunk_size)
            if last_id is None:
                break
            report.chunks += 1
            report.rotated_by_key.update(rotated)
            report.already_rotated += already
            report.last_id = cursor = last_id
            rotated_this_pass += sum(rotated.values())
            if progress:
                progress(sum(rotated.values()) + already)
        limited = max_chunks is not None and report.chunks >= max_chunks
        report.remaining = Code.objects.filter(pk__gt=after_id).exclude(key_id=report.primary_key_id).count()
        if limited or not report.remaining or not rotated_this_pass:
            break
        start = after_id  # rows skipped under lock: sweep again from the start
    return report
