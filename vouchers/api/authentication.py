"""`Authorization: Api-Key <key>` for storefronts (hashed keys, djangorestframework-api-key).

A key is found by its prefix, then its hash is compared on every request (that
comparison is never cached). The row (hash, revoked, expiry, storefront) is kept
in process and trusted only while the merchant's `api_keys` version read in this
request's Redis round trip is the one it was loaded under (config/versions.py):
revoking a key or changing its storefront bumps the version, so a revoked key stops
working on the next request in every process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TypeGuard

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from config.callers import Caller
from partners.api.authentication import partner_caller
from vouchers.models import StorefrontAPIKey
from vouchers.services.api_keys import note_key_use

SCHEME = "Api-Key"
MAX_CACHED_KEYS = 10_000


@dataclass(frozen=True)
class KeyRecord:
    """What authentication needs of a key row and its storefront."""

    pk: str
    prefix: str
    hashed_key: str
    revoked: bool
    expiry_date: datetime | None
    storefront_active: bool
    merchant_id: int
    storefront_id: int
    reservation_ttl_seconds: int
    version: int | None  # the merchant's api_keys version it was loaded under (None: unknown)

    def caller(self) -> Caller:
        return Caller(
            kind="storefront", api_key_id=self.pk, merchant_id=self.merchant_id,
            storefront_id=self.storefront_id, reservation_ttl_seconds=self.reservation_ttl_seconds,
        )


_BY_PREFIX: dict[str, KeyRecord] = {}
_LOCK = threading.Lock()


def load_key(prefix: str, *, version: int | None) -> KeyRecord | None:
    """The key row by prefix from the database (one indexed query), remembered in process."""
    api_key = StorefrontAPIKey.objects.select_related("storefront").filter(prefix=prefix).first()
    if api_key is None:
        return None
    storefront = api_key.storefront
    record = KeyRecord(
        pk=api_key.pk, prefix=prefix, hashed_key=api_key.hashed_key, revoked=api_key.revoked,
        expiry_date=api_key.expiry_date, storefront_active=storefront.is_active,
        merchant_id=storefront.merchant_id, storefront_id=storefront.pk,
        reservation_ttl_seconds=storefront.reservation_ttl_seconds, version=version,
    )
    with _LOCK:
        if len(_BY_PREFIX) >= MAX_CACHED_KEYS:
            _BY_PREFIX.clear()
        _BY_PREFIX[prefix] = record
    return record


def forget_cached_keys() -> None:
    with _LOCK:
        _BY_PREFIX.clear()


def usable(record: KeyRecord | None, key: str) -> TypeGuard[KeyRecord]:
    """Not revoked, not expired, storefront active, and the hash matches (checked every time)."""
    if record is None or record.revoked or not record.storefront_active:
        return False
    if record.expiry_date is not None and record.expiry_date < timezone.now():
        return False
    return StorefrontAPIKey.objects.key_generator.verify(key, record.hashed_key)


def revalidate(request, version: int | None) -> None:
    """After the versions were read: reload a key held under another version; 401 if unusable.

    Loading after the version was read is what makes caching safe: a change committed
    before the read is seen by this load; one committed after it bumps the version again.
    """
    record: KeyRecord = request.auth
    if version is not None and record.version == version:
        return
    fresh = load_key(record.prefix, version=version)
    if not usable(fresh, request._api_key_plaintext):
        raise AuthenticationFailed(_("Unknown, revoked or expired API key."))
    request.user = fresh.caller()
    request.auth = fresh


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _space, key = header.partition(" ")
        if not header:
            return None
        key = key.strip()
        if scheme != SCHEME or not key:
            raise AuthenticationFailed(_("Use the header 'Authorization: Api-Key <key>'."))
        prefix, dot, _secret = key.partition(".")
        if not dot:
            raise AuthenticationFailed(_("Unknown, revoked or expired API key."))
        # A copy held in process is used tentatively; `revalidate` confirms it (or
        # reloads) once this request's versions are read.
        record = _BY_PREFIX.get(prefix)
        if not usable(record, key):
            record = load_key(prefix, version=None)
            if not usable(record, key):
                # Settlement: a partner key (partners.api.authentication); not cached in
                # process, so a revoked partner key stops at once.
                partner = partner_caller(prefix, key)
                if partner is not None:
                    return partner, None
                raise AuthenticationFailed(_("Unknown, revoked or expired API key."))
        request._request._api_key_plaintext = key
        note_key_use(api_key_id=record.pk)  # at most one small write a minute per key and process
        return record.caller(), record

    def authenticate_header(self, request) -> str:
        return SCHEME
