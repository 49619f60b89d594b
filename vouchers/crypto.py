"""Encryption at rest and the blind index for secret codes.

- Each code is sealed with AES-256-GCM under the key ring's primary key, with a
  fresh 96-bit nonce and associated data naming its batch and blind index, so a
  ciphertext copied into another row or batch fails to open.
- Codes are found by a blind index: HMAC-SHA256 of the normalised code under a
  separate key, unique in the database.
- A row whose key id is not in the ring is a loud error, never a fallback.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.signals import setting_changed

NONCE_BYTES = 12


class UnknownKeyId(Exception):
    """A row names a key id that the configured key ring does not hold."""


class CodeIntegrityError(Exception):
    """A ciphertext did not authenticate for its row (tampered, swapped or wrong key)."""


@dataclass(frozen=True)
class Sealed:
    ciphertext: bytes
    nonce: bytes
    key_id: str


class KeyRing:
    def __init__(self, keys: dict[str, bytes], primary_id: str, index_key: bytes) -> None:
        if primary_id not in keys:
            raise UnknownKeyId(f"primary key id {primary_id!r} is not in the key ring")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.primary_id = primary_id
        self._index_key = index_key

    def cipher(self, key_id: str) -> AESGCM:
        try:
            return self._ciphers[key_id]
        except KeyError:
            raise UnknownKeyId(
                f"key id {key_id!r} is not in VOUCHER_ENCRYPTION_KEYS; refusing to decrypt"
            ) from None

    def blind_index(self, normalised: str) -> bytes:
        return hmac.new(self._index_key, normalised.encode("utf-8"), hashlib.sha256).digest()


@lru_cache(maxsize=1)
def key_ring() -> KeyRing:
    return KeyRing(
        dict(settings.VOUCHER_ENCRYPTION_KEYS),
        settings.VOUCHER_PRIMARY_KEY_ID,
        settings.VOUCHER_INDEX_KEY,
    )


def _reset_key_ring(*, setting: str, **kwargs) -> None:
    if setting.startswith("VOUCHER_"):
        key_ring.cache_clear()


setting_changed.connect(_reset_key_ring)


def associated_data(batch_id: int, blind_index: bytes) -> bytes:
    """Bind a ciphertext to its row: the batch and the code's unique blind index."""
    return b"code:v1:%d:" % batch_id + blind_index


def blind_index(normalised: str) -> bytes:
    return key_ring().blind_index(normalised)


def seal(plaintext: str, *, batch_id: int, blind_index: bytes) -> Sealed:
    ring = key_ring()
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = ring.cipher(ring.primary_id).encrypt(
        nonce, plaintext.encode("utf-8"), associated_data(batch_id, blind_index)
    )
    return Sealed(ciphertext=ciphertext, nonce=nonce, key_id=ring.primary_id)


def open_sealed(
    *, ciphertext: bytes, nonce: bytes, key_id: str, batch_id: int, blind_index: bytes
) -> str:
    """Decrypt one code. Raises UnknownKeyId or CodeIntegrityError."""
    cipher = key_ring().cipher(key_id)
    try:
        plaintext = cipher.decrypt(
            bytes(nonce), bytes(ciphertext), associated_data(batch_id, bytes(blind_index))
        )
    except InvalidTag:
        raise CodeIntegrityError(
            "ciphertext does not authenticate for this row (swapped, tampered or wrong key)"
        ) from None
    return plaintext.decode("utf-8")


def decrypt_code(code) -> str:
    """Decrypt a Code row."""
    return open_sealed(
        ciphertext=code.ciphertext, nonce=code.nonce, key_id=code.key_id,
        batch_id=code.batch_id, blind_index=code.blind_index,
    )
