"""Ed25519 signatures of statements: detached compact JWS (RFC 7515 appendix F), JWKS.

The key ring comes from the environment (PARTNER_SIGNING_KEYS, PARTNER_SIGNING_KEY_ID),
like the encryption keys. A key's public half is recorded when it first signs, so the
published key set keeps retired keys and old statements still verify.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterable
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from django.conf import settings
from django.core.signals import setting_changed
from nacl.bindings import (
    crypto_core_ed25519_scalar_add,
    crypto_core_ed25519_scalar_mul,
    crypto_core_ed25519_scalar_reduce,
    crypto_scalarmult_ed25519_base_noclamp,
)

from partners.canonical import canonical


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@lru_cache(maxsize=1)
def _ring() -> dict[str, Ed25519PrivateKey]:
    return {
        kid: Ed25519PrivateKey.from_private_bytes(seed) for kid, seed in settings.PARTNER_SIGNING_KEYS.items()
    }


def _reset(*, setting: str, **kwargs) -> None:
    if setting.startswith("PARTNER_SIGNING"):
        _ring.cache_clear()


setting_changed.connect(_reset)


def public_x(private_key: Ed25519PrivateKey) -> str:
    return b64url(private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def jwk(kid: str, x: str) -> dict:
    return {"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": x, "use": "sig", "alg": "EdDSA"}


def _signing_key() -> tuple[str, Ed25519PrivateKey]:
    from partners.models import SigningKey

    kid = settings.PARTNER_SIGNING_KEY_ID
    key = _ring()[kid]
    SigningKey.objects.get_or_create(kid=kid, defaults={"public_key": public_x(key)})
    return kid, key


def _protected(kid: str) -> str:
    return b64url(canonical({"alg": "EdDSA", "kid": kid}))


def sign_detached(payload: bytes) -> tuple[str, str]:
    """(compact JWS with detached payload, kid) under the primary signing key."""
    kid, key = _signing_key()
    protected = _protected(kid)
    signing_input = protected.encode("ascii") + b"." + b64url(payload).encode("ascii")
    return f"{protected}..{b64url(key.sign(signing_input))}", kid


# --- Ed25519 over a payload too large to hold in memory ---------------------------
#
# An Ed25519 signature (RFC 8032, section 5.1.6) reads the message twice, each time
# only through SHA-512: r = SHA-512(prefix || M), R = r*B, k = SHA-512(R || A || M),
# S = r + k*s mod L. So it can be computed from a message given as chunks, read twice,
# with the same bytes out as any Ed25519 implementation (the scheme is deterministic;
# tests compare it with `cryptography` on many keys and messages). The two hashes are
# hashlib's; the scalar and point arithmetic is libsodium's (through PyNaCl), which is
# constant-time: `cryptography` signs only a message held whole in memory.


def _expand(key: Ed25519PrivateKey) -> tuple[bytes, bytes, bytes]:
    """(secret scalar mod L, nonce prefix, public key) as RFC 8032 derives them from the seed."""
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    expanded = hashlib.sha512(seed).digest()
    clamped = bytearray(expanded[:32])
    clamped[0] &= 248
    clamped[31] &= 127
    clamped[31] |= 64
    secret = crypto_core_ed25519_scalar_reduce(bytes(clamped) + bytes(32))
    return secret, expanded[32:], key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _finish_signature(key: Ed25519PrivateKey, nonce_hash, message_again: Iterable[bytes]) -> bytes:
    """The signature, given SHA-512(prefix || M) so far and M once more."""
    secret, _, public = _expand(key)
    nonce = crypto_core_ed25519_scalar_reduce(nonce_hash.digest())
    big_r = crypto_scalarmult_ed25519_base_noclamp(nonce)
    challenge_hash = hashlib.sha512(big_r + public)
    for chunk in message_again:
        challenge_hash.update(chunk)
    challenge = crypto_core_ed25519_scalar_reduce(challenge_hash.digest())
    return big_r + crypto_core_ed25519_scalar_add(nonce, crypto_core_ed25519_scalar_mul(challenge, secret))


def ed25519_sign_chunks(key: Ed25519PrivateKey, message: Callable[[], Iterable[bytes]]) -> bytes:
    """The Ed25519 signature of the concatenation of `message()`'s chunks (called twice)."""
    nonce_hash = hashlib.sha512(_expand(key)[1])
    for chunk in message():
        nonce_hash.update(chunk)
    return _finish_signature(key, nonce_hash, message())


class _B64url:
    """base64url without padding, fed in chunks of any size (3-byte aligned inside)."""

    def __init__(self):
        self._carry = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._carry + chunk if self._carry else chunk
        cut = len(data) - len(data) % 3
        self._carry = bytes(data[cut:])
        return base64.urlsafe_b64encode(data[:cut]) if cut else b""

    def end(self) -> bytes:
        return base64.urlsafe_b64encode(self._carry).rstrip(b"=")


def _b64url_chunks(chunks: Iterable[bytes]) -> Iterable[bytes]:
    """base64url without padding of the concatenated chunks, streamed."""
    encoder = _B64url()
    for chunk in chunks:
        yield encoder.feed(chunk)
    yield encoder.end()


class ChunkedSigner:
    """sign_detached for a payload too large to hold: update() it once as it is produced,
    then finish() reads it once more (or second_pass(), update_again() per chunk and
    signature(), when the second reading serves something else too).

    The same JWS as sign_detached(payload), without the payload or its base64url form
    in memory at once: the first SHA-512 pass runs while the payload is written.
    """

    def __init__(self):
        self.kid, self._key = _signing_key()
        self.protected = _protected(self.kid)
        self._head = self.protected.encode("ascii") + b"."
        self._nonce_hash = hashlib.sha512(_expand(self._key)[1] + self._head)
        self._encoder = _B64url()

    def update(self, chunk: bytes) -> None:
        self._nonce_hash.update(self._encoder.feed(chunk))

    def second_pass(self) -> None:
        """End the first pass; from now on update_again() takes the payload once more.

        Lets the second pass run while the payload is read for something else (the close
        streams it into the database at the same time)."""
        self._nonce_hash.update(self._encoder.end())
        secret, _, public = _expand(self._key)
        self._nonce = crypto_core_ed25519_scalar_reduce(self._nonce_hash.digest())
        self._secret = secret
        self._big_r = crypto_scalarmult_ed25519_base_noclamp(self._nonce)
        self._challenge_hash = hashlib.sha512(self._big_r + public + self._head)
        self._encoder = _B64url()

    def update_again(self, chunk: bytes) -> None:
        self._challenge_hash.update(self._encoder.feed(chunk))

    def signature(self) -> tuple[str, str]:
        """(compact JWS with detached payload, kid) once the payload went through update_again()."""
        self._challenge_hash.update(self._encoder.end())
        challenge = crypto_core_ed25519_scalar_reduce(self._challenge_hash.digest())
        signature = self._big_r + crypto_core_ed25519_scalar_add(
            self._nonce, crypto_core_ed25519_scalar_mul(challenge, self._secret)
        )
        return f"{self.protected}..{b64url(signature)}", self.kid

    def finish(self, payload_again: Iterable[bytes]) -> tuple[str, str]:
        """(compact JWS with detached payload, kid); `payload_again` is the same bytes."""
        self.second_pass()
        for chunk in payload_again:
            self.update_again(chunk)
        return self.signature()


def sign_detached_chunks(payload: Callable[[], Iterable[bytes]]) -> tuple[str, str]:
    """sign_detached for a payload given as chunks (`payload()` is called twice)."""
    signer = ChunkedSigner()
    for chunk in payload():
        signer.update(chunk)
    return signer.finish(payload())


def published_keys() -> list[dict]:
    """Every key that signed or may sign: recorded public keys plus the current ring."""
    from partners.models import SigningKey

    keys = {row.kid: row.public_key for row in SigningKey.objects.all()}
    for kid, private_key in _ring().items():
        keys.setdefault(kid, public_x(private_key))
    return [jwk(kid, x) for kid, x in sorted(keys.items())]


def verify_detached(payload: bytes, jws: str, jwks: dict) -> bool:
    """Whether `jws` (compact, detached) signs `payload` under a key of `jwks`."""
    try:
        protected, empty, signature = jws.split(".")
        header = json.loads(b64url_decode(protected))
    except ValueError:
        return False
    if empty or header.get("alg") != "EdDSA":
        return False
    key = next((k for k in jwks.get("keys", []) if k.get("kid") == header.get("kid")), None)
    if key is None or key.get("crv") != "Ed25519":
        return False
    public = Ed25519PublicKey.from_public_bytes(b64url_decode(key["x"]))
    try:
        public.verify(
            b64url_decode(signature), protected.encode("ascii") + b"." + b64url(payload).encode("ascii")
        )
    except (InvalidSignature, ValueError):
        return False
    return True
