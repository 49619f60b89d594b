"""An independent statement verifier: only `cryptography` and json, nothing of the project.

What a partner's finance team would write: check the detached JWS over the document
bytes with a key from the published JWKS, and the document's hash and chain link.
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64e(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def verify(document: bytes, jws: str, jwks: dict) -> bool:
    protected, payload, signature = jws.split(".")
    if payload:
        return False
    header = json.loads(_b64d(protected))
    if header.get("alg") != "EdDSA":
        return False
    keys = {k["kid"]: k for k in jwks["keys"] if k.get("kty") == "OKP" and k.get("crv") == "Ed25519"}
    if header.get("kid") not in keys:
        return False
    public = Ed25519PublicKey.from_public_bytes(_b64d(keys[header["kid"]]["x"]))
    try:
        public.verify(_b64d(signature), protected.encode() + b"." + _b64e(document))
    except InvalidSignature:
        return False
    return True


def totals_hold(document: bytes) -> bool:
    """total = sum of the lines, closing = opening + total, line_count = number of lines."""
    body = json.loads(document)
    statement, lines = body["statement"], body["lines"]
    return (
        statement["total_minor"] == sum(line["amount_minor"] for line in lines)
        and statement["closing_minor"] == statement["opening_minor"] + statement["total_minor"]
        and statement["line_count"] == len(lines)
    )


def content_sha256(document: bytes) -> str:
    return hashlib.sha256(document).hexdigest()
