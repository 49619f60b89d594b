"""When a code stops being usable: the batch's window or the code's own expiry, whichever is first."""

from __future__ import annotations

from datetime import datetime

from vouchers.models import Batch, Code


def code_expires_at(code: Code, batch: Batch) -> datetime | None:
    candidates = [t for t in (batch.valid_until, code.expires_at) if t is not None]
    return min(candidates) if candidates else None


def is_expired(code: Code, batch: Batch, now: datetime) -> bool:
    expires_at = code_expires_at(code, batch)
    return expires_at is not None and expires_at <= now
