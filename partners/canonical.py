"""Canonical JSON (RFC 8785) and the hashes built on it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import rfc8785


def canonical(value) -> bytes:
    """RFC 8785 canonical JSON bytes (sorted keys, no whitespace, UTF-8)."""
    return rfc8785.dumps(value)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def iso(moment: datetime | None) -> str | None:
    """A time as ISO 8601 UTC with microseconds and Z: one spelling for hashes and documents."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
