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
# tests compare it with `cryptography` on many keys and messages). Only the scalar
# multiplication r*B is done here, in Python integers: not constant-time, so it is used
# for statements too large to sign in one piece, in the batch close, never on a request.

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, -1, _P) % _P


def _point_add(p1, p2):
    a = (p1[1] - p1[0]) * (p2[1] - p2[0]) % _P
    b = (p1[1] + p1[0]) * (p2[1] + p2[0]) % _P
    c = 2 * p1[3] * p2[3] * _D % _P
    d = 2 * p1[2] * p2[2] % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _scalar_mult(scalar: int, point):
    result = (0, 1, 1, 0)
    while scalar:
        if scalar & 1:
            result = _point_add(result, point)
        point = _point_add(point, point)
        scalar >>= 1
    return result


def _encode_point(point) -> bytes:
    z_inv = pow(point[2], -1, _P)
    x, y = point[0] * z_inv % _P, point[1] * z_inv % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _base_point():
    y = 4 * pow(5, -1, _P) % _P
    x2 = (y * y - 1) * pow(_D * y * y + 1, -1, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * pow(2, (_P - 1) // 4, _P) % _P
    if x & 1:
        x = _P - x
    return (x, y, 1, x * y % _P)


_B = _base_point()


def _expand(key: Ed25519PrivateKey) -> tuple[int, bytes, bytes]:
    """(secret scalar, nonce prefix, public key bytes) as RFC 8032 derives them from the seed."""
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    expanded = hashlib.sha512(seed).digest()
    secret = int.from_bytes(expanded[:32], "little")
    secret &= (1 << 254) - 8
    secret |= 1 << 254
    return secret, expanded[32:], key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _finish_signature(key: Ed25519PrivateKey, nonce_hash, message_again: Iterable[bytes]) -> bytes:
    """The signature, given SHA-512(prefix || M) so far and M once more."""
    secret, _, public = _expand(key)
    nonce = int.from_bytes(nonce_hash.digest(), "little") % _L
    big_r = _encode_point(_scalar_mult(nonce, _B))
    challenge_hash = hashlib.sha512(big_r + public)
    for chunk in message_again:
        challenge_hash.update(chunk)
    challenge = int.from_bytes(challenge_hash.digest(), "little") % _L
    return big_r + ((nonce + challenge * secret) % _L).to_bytes(32, "little")


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
    then finish() reads it once more.

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

    def finish(self, payload_again: Iterable[bytes]) -> tuple[str, str]:
        """(compact JWS with detached payload, kid); `payload_again` is the same bytes."""
        self._nonce_hash.update(self._encoder.end())

        def signing_input() -> Iterable[bytes]:
            yield self._head
            yield from _b64url_chunks(payload_again)

        signature = _finish_signature(self._key, self._nonce_hash, signing_input())
        return f"{self.protected}..{b64url(signature)}", self.kid


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
