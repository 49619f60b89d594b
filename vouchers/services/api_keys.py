"""Creating and revoking storefront API keys.

Only a key's hash and its prefix are stored (djangorestframework-api-key). The
plaintext key is returned once to the caller that created it, to be shown to the
staff member once; it is never logged, stored or shown again.
"""

from __future__ import annotations

import logging

from django.db import transaction

from config import versions
from vouchers.exceptions import DomainError
from vouchers.models import Storefront, StorefrontAPIKey
from vouchers.services.events import actor_for_user

logger = logging.getLogger(__name__)

MAX_KEY_NAME_LENGTH = StorefrontAPIKey._meta.get_field("name").max_length


class InvalidAPIKeyName(DomainError):
    code = "invalid_request"
    title = "An API key needs a name"


class APIKeyAlreadyRevoked(DomainError):
    code = "already_revoked"
    status = 409
    title = "This API key is already revoked"


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
    logger.info(
        "storefront API key created: prefix=%s storefront=%s by=%s",
        api_key.prefix, storefront.pk, actor_for_user(created_by),
    )
    return api_key, plaintext


@transaction.atomic(durable=True)
def revoke_storefront_key(*, api_key: StorefrontAPIKey, revoked_by) -> StorefrontAPIKey:
    """Revoke a key for good (a revoked key never authenticates again).

    One conditional UPDATE, so revoking twice is refused rather than silently repeated.
    Raises APIKeyAlreadyRevoked.
    """
    updated = StorefrontAPIKey.objects.filter(pk=api_key.pk, revoked=False).update(revoked=True)
    if updated != 1:
        raise APIKeyAlreadyRevoked(f"the key {api_key.prefix} is already revoked")
    api_key.revoked = True
    storefront_keys_changed(merchant_id=api_key.storefront.merchant_id)
    logger.info(
        "storefront API key revoked: prefix=%s storefront=%s by=%s",
        api_key.prefix, api_key.storefront_id, actor_for_user(revoked_by),
    )
    return api_key


def storefront_keys_changed(*, merchant_id: int) -> None:
    """Call in the transaction that revoked a key or changed a storefront (active, TTL):
    every process reloads the merchant's keys on its next request."""
    versions.bump(merchant_id, versions.API_KEYS)
