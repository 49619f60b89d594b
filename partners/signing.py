"""Ed25519 signatures of statements: detached compact JWS (RFC 7515 appendix F), JWKS.

The key ring comes from the environment (PARTNER_SIGNING_KEYS, PARTNER_SIGNING_KEY_ID),
like the encryption keys. A key's public half is recorded when it first signs, so the
published key set keeps retired keys and old statements still verify.
"""

from __future__ import annotations

import base64
import json
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
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


def sign_detached(payload: bytes) -> tuple[str, str]:
    """(compact JWS with detached payload, kid) under the primary signing key."""
    from partners.models import SigningKey

    kid = settings.PARTNER_SIGNING_KEY_ID
    key = _ring()[kid]
    SigningKey.objects.get_or_create(kid=kid, defaults={"public_key": public_x(key)})
    protected = b64url(canonical({"alg": "EdDSA", "kid": kid}))
    signing_input = protected.encode("ascii") + b"." + b64url(payload).encode("ascii")
    return f"{protected}..{b64url(key.sign(signing_input))}", kid


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
