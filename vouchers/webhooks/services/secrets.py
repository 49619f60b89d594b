"""Endpoint signing secrets: made, sealed at rest, and used to sign deliveries.

A secret is sealed with the code key ring's primary key (AES-256-GCM, associated
data naming the endpoint), so a database dump alone does not let anyone forge our
signatures. The signature is Stripe's scheme: HMAC-SHA256 of "<t>.<raw body>".
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from vouchers.crypto import NONCE_BYTES, UnknownKeyId, key_ring

SECRET_PREFIX = "whsec_"  # noqa: S105 (a label, not a secret)


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _aad(endpoint_id) -> bytes:
    return f"webhook-secret:v1:{endpoint_id}".encode()


def seal_secret(secret: str, *, endpoint_id) -> tuple[bytes, bytes, str]:
    """(ciphertext, nonce, key id) of a secret, bound to its endpoint."""
    ring = key_ring()
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = ring.cipher(ring.primary_id).encrypt(nonce, secret.encode(), _aad(endpoint_id))
    return ciphertext, nonce, ring.primary_id


def open_secret(*, ciphertext, nonce, key_id: str, endpoint_id) -> str:
    """Raises UnknownKeyId, cryptography's InvalidTag on a swapped or tampered row."""
    if not key_id:
        raise UnknownKeyId("the endpoint has no sealed secret")
    cipher = key_ring().cipher(key_id)
    return cipher.decrypt(bytes(nonce), bytes(ciphertext), _aad(endpoint_id)).decode()


def signature(secret: str, *, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets_in_use: list[str], *, timestamp: int, body: bytes) -> str:
    """`t=<unix>,v1=<hex>[,v1=<hex>]`: one v1 per live secret (two during a rotation)."""
    signatures = [f"v1={signature(s, timestamp=timestamp, body=body)}" for s in secrets_in_use]
    parts = [f"t={timestamp}", *signatures]
    return ",".join(parts)


def verify(header: str, *, secret: str, body: bytes, now: int, tolerance: int = 300) -> bool:
    """What a receiver does (docs/webhooks.md shows the same in a standalone snippet)."""
    fields = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value for name, value in fields if name == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit() or abs(now - int(stamps[0])) > tolerance:
        return False
    expected = signature(secret, timestamp=int(stamps[0]), body=body)
    return any(hmac.compare_digest(expected, value) for name, value in fields if name == "v1")
