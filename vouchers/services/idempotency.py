"""Idempotency records: the first response to a (caller, Idempotency-Key).

The record lives in the effect's transaction (docs/transactions.md): it is claimed
with `INSERT ... ON CONFLICT DO NOTHING` as the transaction's first statement and
completed in it, so a crash rolls back the effect and the key together, and a
duplicate finds either nothing (and runs) or the finished answer (and replays).

A duplicate that arrives while the first attempt is still running must not wait for
it (the unique index would make its INSERT block until the first commits): on
PostgreSQL the claim first tries a transaction-level advisory lock on a hash of
(caller, key), in the same statement, and a duplicate that does not get it answers
409 at once. On SQLite the database-wide write lock serialises writers anyway.

Stored bodies never hold a plaintext code: codes are kept as ids and decrypted again
on replay. The request fingerprint is an HMAC, not a plain hash, because a body may
contain a code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from vouchers.crypto import decrypt_code
from vouchers.models import Code, IdempotencyRecord

FINGERPRINT_LABEL = b"idempotency-fingerprint:v1"
TABLE = IdempotencyRecord._meta.db_table


def fingerprint(*, method: str, path: str, body) -> str:
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"), default=str)
    key = hmac.new(settings.VOUCHER_INDEX_KEY, FINGERPRINT_LABEL, hashlib.sha256).digest()
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def advisory_lock_id(*, caller: str, key: str) -> int:
    """A signed 64-bit number naming (caller, key) for pg_try_advisory_xact_lock.

    Two different keys sharing a number (1 in 2**64) only make one of them answer 409
    while the other runs; it never merges their effects (the unique key does that).
    """
    digest = hashlib.blake2b(f"{caller}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True)
class Claim:
    """Outcome of claiming a key: run the request, replay a stored one, or refuse."""

    outcome: str  # "run" | "replay" | "in_progress" | "mismatch"
    record_id: int | None = None
    record: IdempotencyRecord | None = None

    @property
    def run_record_id(self) -> int:
        """The record a "run" claim inserted, to complete with the response."""
        if self.record_id is None:
            raise ValueError(f"a {self.outcome!r} claim has no record to complete")
        return self.record_id


# PostgreSQL: one statement. The advisory lock is tried first (a duplicate in flight
# answers 409 instead of queueing behind the unique index); only its holder inserts;
# ON CONFLICT DO NOTHING leaves a finished (or stale) record for the caller to read.
_CLAIM_POSTGRES = f"""
WITH lock AS (SELECT pg_try_advisory_xact_lock(%(lock_id)s) AS got),
     claim AS (
       INSERT INTO {TABLE} (caller, key, fingerprint, state, created_at)
       SELECT %(caller)s, %(key)s, %(fingerprint)s, 'in_progress', %(now)s FROM lock WHERE got
       ON CONFLICT (caller, key) DO NOTHING
       RETURNING id)
SELECT lock.got, claim.id FROM lock LEFT JOIN claim ON true
"""  # noqa: S608 (table name from the model)

# SQLite: the first write of the transaction takes the database's write lock, which
# serialises two attempts with the same key; ON CONFLICT DO NOTHING as above.
_CLAIM_SQLITE = f"""
INSERT INTO {TABLE} (caller, key, fingerprint, state, created_at)
VALUES (%(caller)s, %(key)s, %(fingerprint)s, 'in_progress', %(now)s)
ON CONFLICT (caller, key) DO NOTHING
RETURNING id
"""  # noqa: S608


def claim(*, caller: str, key: str, fingerprint: str) -> Claim:
    """Claim (caller, key) inside the current transaction (the effect's). Must run in one.

    "run": the caller does the effect and calls `complete` before committing;
    "replay": the stored record answers; "mismatch": the key was used with another
    body; "in_progress": another attempt holds the key right now.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("an idempotency claim belongs in the transaction of its effect")
    now = timezone.now()
    params: dict[str, Any] = {"caller": caller, "key": key, "fingerprint": fingerprint,
              "lock_id": advisory_lock_id(caller=caller, key=key),
              "now": connection.ops.adapt_datetimefield_value(now)}
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_CLAIM_POSTGRES, params)
            got, record_id = cursor.fetchone()
            if not got:
                return Claim("in_progress")
        else:
            cursor.execute(_CLAIM_SQLITE, params)
            row = cursor.fetchone()
            record_id = row[0] if row else None
    if record_id is not None:
        return Claim("run", record_id)
    record = IdempotencyRecord.objects.filter(caller=caller, key=key).first()
    if record is None:  # purged between the INSERT's check and this read: the client retries
        return Claim("in_progress")
    if record.fingerprint != fingerprint:
        return Claim("mismatch", record.pk, record)
    if record.state == IdempotencyRecord.State.DONE:
        return Claim("replay", record.pk, record)
    # An unfinished record with no transaction behind it (we hold the key's lock): left
    # by an attempt that died outside a transaction. Recent: treat it as running; old:
    # take it over (its effect, if any, would have completed it in the same transaction).
    stale_before = now - timedelta(seconds=settings.IDEMPOTENCY_STALE_SECONDS)
    if record.created_at < stale_before:
        return Claim("run", record.pk, record)
    return Claim("in_progress", record.pk, record)


# Written as SQL: the ORM's UPDATE costs more CPU to build than to run, on every request.
_COMPLETE = (
    f"UPDATE {TABLE} SET state = '{IdempotencyRecord.State.DONE.value}', "  # noqa: S608
    "response_status = %s, response_body = %s WHERE id = %s"
)
_BODY = IdempotencyRecord._meta.get_field("response_body")


def complete(record_id: int, *, status: int, body) -> None:
    """Store the response of a claimed key, in the transaction of the claim and the effect."""
    with connection.cursor() as cursor:
        cursor.execute(_COMPLETE, [status, _BODY.get_db_prep_save(strip_codes(body), connection), record_id])


def strip_codes(body):
    """The body with every plaintext code removed (code ids stay)."""
    if isinstance(body, dict) and isinstance(body.get("codes"), list):
        body = dict(body)
        body["codes"] = [{k: v for k, v in item.items() if k != "code"} for item in body["codes"]]
    return body


def restore_codes(body):
    """Decrypt the codes of a stored body again, by id, for a replay."""
    if not (isinstance(body, dict) and isinstance(body.get("codes"), list) and body["codes"]):
        return body
    rows = Code.objects.in_bulk([item["id"] for item in body["codes"]])
    body = dict(body)
    body["codes"] = [{**item, "code": decrypt_code(rows[item["id"]])} for item in body["codes"]]
    return body


def purge_expired(*, older_than_hours: int | None = None) -> int:
    """Delete records past their retention (at least 24 hours). Returns how many."""
    hours = older_than_hours or settings.IDEMPOTENCY_RETENTION_HOURS
    cutoff = timezone.now() - timedelta(hours=max(hours, 24))
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
