"""Idempotency records: the first response to a (caller, Idempotency-Key).

A record is claimed (INSERT, committed at once so a concurrent duplicate sees it),
then completed in the same transaction as the effect it guards, so a crash can never
leave an effect without its record. Stored bodies never hold a plaintext code: codes
are kept as ids and decrypted again on replay. The request fingerprint is an HMAC,
not a plain hash, because a body may contain a code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from vouchers.crypto import decrypt_code
from vouchers.models import Code, IdempotencyRecord

FINGERPRINT_LABEL = b"idempotency-fingerprint:v1"


def fingerprint(*, method: str, path: str, body) -> str:
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"), default=str)
    key = hmac.new(settings.VOUCHER_INDEX_KEY, FINGERPRINT_LABEL, hashlib.sha256).digest()
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Claim:
    """Outcome of claiming a key: run the request, replay a stored one, or refuse."""

    outcome: str  # "run" | "replay" | "in_progress" | "mismatch"
    record: IdempotencyRecord


def claim(*, caller: str, key: str, fingerprint: str) -> Claim:
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(caller=caller, key=key, fingerprint=fingerprint)
        return Claim("run", record)
    except IntegrityError:
        record = IdempotencyRecord.objects.get(caller=caller, key=key)
    if record.fingerprint != fingerprint:
        return Claim("mismatch", record)
    if record.state == IdempotencyRecord.State.DONE:
        return Claim("replay", record)
    stale_before = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_STALE_SECONDS)
    # An attempt that started long ago and holds no lock died before finishing; its
    # effect (if any) would have completed the record in the same transaction.
    return Claim("run" if record.created_at < stale_before else "in_progress", record)


class AlreadyCompleted(Exception):
    """Another attempt completed the record between our claim and our lock."""


def lock_for_run(record: IdempotencyRecord) -> IdempotencyRecord | None:
    """Inside the effect's transaction: lock the record, or None if another attempt holds it.

    Raises AlreadyCompleted if it was completed meanwhile.
    """
    try:
        locked = IdempotencyRecord.objects.select_for_update(nowait=True).filter(pk=record.pk).first()
    except DatabaseError:  # NOWAIT: the lock is held by the attempt still running
        return None
    if locked is None:  # purged under us: treat like a running attempt, the client retries
        return None
    if locked.state == IdempotencyRecord.State.DONE:
        raise AlreadyCompleted
    return locked


def complete(record: IdempotencyRecord, *, status: int, body) -> None:
    record.state = IdempotencyRecord.State.DONE
    record.response_status = status
    record.response_body = strip_codes(body)
    record.save(update_fields=["state", "response_status", "response_body"])


def forget(record: IdempotencyRecord) -> None:
    """Drop a claim whose attempt failed unexpectedly (its transaction rolled back)."""
    IdempotencyRecord.objects.filter(pk=record.pk, state=IdempotencyRecord.State.IN_PROGRESS).delete()


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
