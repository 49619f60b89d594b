"""Development keys for the embedded default.

The embedded profile must run with no environment at all, yet codes are always
encrypted. So on first start it creates a secret key, one AES-256 key and a
blind-index key in a git-ignored file and reuses them afterwards (losing the file
makes the stored codes unreadable, which is the point of keeping it local).
Production never reads this file: it refuses to start without real keys.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from pathlib import Path


def load_or_create(path: Path) -> dict:
    if path.exists():
        return json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    material = {
        "secret_key": secrets.token_urlsafe(64),
        "encryption_keys": {"dev1": base64.b64encode(secrets.token_bytes(32)).decode()},
        "primary_key_id": "dev1",
        "index_key": base64.b64encode(secrets.token_bytes(32)).decode(),
    }
    # Write with owner-only permissions from the start.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(material, handle, indent=2)
    print(f"Created development keys in {path} (not for production).", file=sys.stderr)
    return material


def signing_keys(path: Path) -> tuple[dict[str, str], str]:
    """The development Ed25519 statement-signing key ring ({kid: base64 seed}, primary kid).

    Added to an existing development key file on first use (files made before
    statements were signed lack it).
    """
    material = load_or_create(path)
    if "signing_keys" not in material:
        material["signing_keys"] = {"devsig1": base64.b64encode(secrets.token_bytes(32)).decode()}
        material["signing_key_id"] = "devsig1"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(material, handle, indent=2)
        os.replace(tmp, path)
    return material["signing_keys"], material["signing_key_id"]
