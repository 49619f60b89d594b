"""Partner API keys (djangorestframework-api-key, hashed): the caller they act for."""

from __future__ import annotations

from config.callers import Caller


def partner_caller(prefix: str, key: str) -> Caller | None:
    """The partner a presented key acts for, or None if it is not a live partner key."""
    from partners.models import PartnerAPIKey

    api_key = PartnerAPIKey.objects.filter(prefix=prefix, revoked=False).first()
    if api_key is None or api_key.has_expired or not api_key.is_valid(key):
        return None
    return Caller(kind="partner", api_key_id=api_key.pk, partner_id=api_key.partner_id)
