"""Creating and revoking storefront API keys.

Only a key's hash and its prefix are stored (djangorestframework-api-key). The
plaintext key is returned once to the caller that created it, to be shown to the
staff member once; it is never logged, stored or shown again.
"""

from __future__ import annotations

import logging
import time
from typing import cast

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config import versions
from config.errors import DomainError
from vouchers.audit.services import record_audit
from vouchers.models import Storefront, StorefrontAPIKey
from vouchers.services.events import actor_for_user

logger = logging.getLogger(__name__)

MAX_KEY_NAME_LENGTH: int = StorefrontAPIKey._meta.get_field("name").max_length  # type: ignore[assignment]  # set


class InvalidAPIKeyName(DomainError):
    """400 `invalid_request`: an API key needs a name."""


class APIKeyAlreadyRevoked(DomainError):
    """409 `already_revoked`: this API key is already revoked."""


@transaction.atomic(durable=True)
def create_storefront_key(
    *, storefront: Storefront, name: str, created_by
) -> tuple[StorefrontAPIKey, str]:
    """Create a key acting for `storefront`; returns (the stored key, the plaintext key).

    The plaintext is the only copy: the caller shows it once and drops it. The log
    line names the key by its prefix only. Raises InvalidAPIKeyName (blank or too long).
    """
    name = (name or "").strip()
    if not name or len(name) > MAX_KEY_NAME_LENGTH:
        raise InvalidAPIKeyName(f"a key name has 1 to {MAX_KEY_NAME_LENGTH} characters")
    api_key, plaintext = StorefrontAPIKey.objects.create_key(name=name, storefront=storefront)
    record_audit(
        action="api_key_created", merchant_id=storefront.merchant_id, user=created_by, target=api_key,
        target_id=api_key.prefix, target_label=f"{api_key.prefix} ({api_key.name})",
        details={"prefix": api_key.prefix, "name": api_key.name, "storefront_id": storefront.pk},
    )
    logger.info(
        "storefront API key created: prefix=%s storefront=%s by=%s",
        api_key.prefix, storefront.pk, actor_for_user(created_by),
    )
    return cast(StorefrontAPIKey, api_key), plaintext


@transaction.atomic(durable=True)
def revoke_storefront_key(
    *, api_key: StorefrontAPIKey, revoked_by, reason: str = ""
) -> StorefrontAPIKey:
    """Revoke a key for good (a revoked key never authenticates again).

    One conditional UPDATE, so revoking twice is refused rather than silently repeated;
    the audit entry is written in the same transaction. Raises APIKeyAlreadyRevoked.
    """
    updated = StorefrontAPIKey.objects.filter(pk=api_key.pk, revoked=False).update(revoked=True)
    if updated != 1:
        raise APIKeyAlreadyRevoked(f"the key {api_key.prefix} is already revoked")
    api_key.revoked = True
    merchant_id = (
        Storefront.objects.filter(pk=api_key.storefront_id).values_list("merchant_id", flat=True).get()
    )
    record_audit(
        action="api_key_revoked", merchant_id=merchant_id, user=revoked_by, target=api_key,
        target_id=api_key.prefix, target_label=f"{api_key.prefix} ({api_key.name})", reason=reason,
        details={"prefix": api_key.prefix, "name": api_key.name, "storefront_id": api_key.storefront_id},
    )
    storefront_keys_changed(merchant_id=merchant_id)
    logger.info(
        "storefront API key revoked: prefix=%s storefront=%s by=%s",
        api_key.prefix, api_key.storefront_id, actor_for_user(revoked_by),
    )
    return api_key


def storefront_keys_changed(*, merchant_id: int) -> None:
    """Call in the transaction that revoked a key or changed a storefront (active, TTL):
    every process reloads the merchant's keys on its next request."""
    versions.bump(merchant_id, versions.API_KEYS)


# key id -> monotonic time of this process's last write of its last_used_at
_LAST_USE_WRITTEN: dict[str, float] = {}


def last_use_interval() -> float:
    return float(getattr(settings, "API_KEY_LAST_USE_INTERVAL_SECONDS", 60))


def note_key_use(*, api_key_id: str) -> bool:
    """Record that a key authenticated a request, at most once a minute per key and process.

    Called on every authenticated request, so it must be cheap: a dictionary look-up,
    and one UPDATE of one row when this process has not written the key's time for a
    minute (no cache round trip, no write per request). With N worker processes a busy
    key costs at most N small writes a minute, and `last_used_at` is at most a minute
    (plus the time between requests) behind. Returns whether it wrote.
    """
    now = time.monotonic()
    last = _LAST_USE_WRITTEN.get(api_key_id)
    if last is not None and now - last < last_use_interval():
        return False
    _LAST_USE_WRITTEN[api_key_id] = now
    StorefrontAPIKey.objects.filter(pk=api_key_id).update(last_used_at=timezone.now())
    return True
