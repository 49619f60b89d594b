"""`Authorization: Api-Key <key>` for storefronts (hashed keys, djangorestframework-api-key).

One indexed query by the key's prefix, then a SHA-512 comparison: cheap per request.
"""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from partners.api.authentication import partner_caller
from vouchers.callers import Caller
from vouchers.models import StorefrontAPIKey

SCHEME = "Api-Key"


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, key = header.partition(" ")
        if not header:
            return None
        key = key.strip()
        if scheme != SCHEME or not key:
            raise AuthenticationFailed("Use the header 'Authorization: Api-Key <key>'.")
        prefix, dot, _ = key.partition(".")
        api_key = (
            StorefrontAPIKey.objects.select_related("storefront")
            .filter(prefix=prefix, revoked=False).first()
            if dot else None
        )
        if api_key is None and dot:  # settlement: a partner key (partners.api.authentication)
            partner = partner_caller(prefix, key)
            if partner is not None:
                return partner, None
        if (
            api_key is None or api_key.has_expired or not api_key.is_valid(key)
            or not api_key.storefront.is_active
        ):
            raise AuthenticationFailed("Unknown, revoked or expired API key.")
        storefront = api_key.storefront
        caller = Caller(
            kind="storefront", api_key_id=api_key.pk, merchant_id=storefront.merchant_id,
            storefront_id=storefront.pk, reservation_ttl_seconds=storefront.reservation_ttl_seconds,
        )
        return caller, api_key

    def authenticate_header(self, request) -> str:
        return SCHEME
