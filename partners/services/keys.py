"""Partner API keys: created by staff, shown once, stored hashed, revocable."""

from __future__ import annotations

from typing import cast

from partners.models import Partner, PartnerAPIKey


def create_partner_key(*, partner: Partner, name: str) -> tuple[PartnerAPIKey, str]:
    """A new key for the partner; the plaintext is returned once and never stored."""
    api_key, plaintext = PartnerAPIKey.objects.create_key(name=name, partner=partner)
    return cast(PartnerAPIKey, api_key), plaintext


def revoke_partner_key(*, api_key: PartnerAPIKey) -> None:
    PartnerAPIKey.objects.filter(pk=api_key.pk).update(revoked=True)
