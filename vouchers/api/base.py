"""Base API views: authentication, rate limits, and idempotent POSTs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.conf import settings
from django.http import Http404
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated, PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from config import versions
from config.callers import Caller, CustomerContext
from fraud import conf as fraud_conf
from fraud import counters
from fraud.services import lockouts
from vouchers.api import authentication, ratelimits
from vouchers.api.authentication import ApiKeyAuthentication
from vouchers.api.errors import IdempotencyKeyRequired
from vouchers.api.idempotent import respond_once
from vouchers.services import idempotency, risk

if TYPE_CHECKING:
    from rest_framework.permissions import _PermissionClass

IDEMPOTENCY_HEADER = "Idempotency-Key"
# In-process copies validated by the versions read in the request's round trip.
CACHED_PER_MERCHANT = (versions.API_KEYS, versions.FRAUD_RULES, versions.FRAUD_LISTS, versions.AGREEMENTS)


class IsStorefront(BasePermission):
    """A storefront key; a partner key on a storefront-only path is 404 not_found."""

    def has_permission(self, request, view) -> bool:
        if isinstance(request.user, Caller) and request.user.kind == "partner":
            raise Http404
        return isinstance(request.user, Caller) and request.user.kind == "storefront"


class IsStorefrontOrPartner(BasePermission):
    """Check, redemption and reversal: a storefront key or a partner key (settlement)."""

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, Caller)


class StorefrontApiView(APIView):
    """Authenticated as a storefront; limited per connection address and per API key."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes: Sequence[_PermissionClass] = [IsStorefront]

    # The action whose lockouts this endpoint checks (check, redeem), if any: their state
    # is read in the rate limits' round trip.
    lockout_action: str | None = None

    def dispatch(self, request, *args, **kwargs):
        token = counters.READ_AHEAD.set({})  # this request's reads, nobody else's
        versions_token = versions.start_request()
        try:
            return super().dispatch(request, *args, **kwargs)
        finally:
            versions.end_request(versions_token)
            counters.READ_AHEAD.reset(token)

    def initial(self, request, *args, **kwargs):
        try:
            super().initial(request, *args, **kwargs)  # authentication and permission
        except (AuthenticationFailed, NotAuthenticated, PermissionDenied):
            # A key guesser is limited by address too (and gets 429 once over it).
            ratelimits.admit(request, api_key_id=None)
            raise
        # One Redis round trip: both rate limits, the lockout state, the cache versions.
        caller: Caller = request.user
        if caller.kind == "partner":
            # A partner key acts across merchants and is not cached in process: its
            # own rate-limit bucket, and no per-merchant versions to read.
            lockout_keys = self.read_ahead_keys(request)
            values = ratelimits.admit(request, api_key_id=f"partner-{caller.api_key_id}", reads=lockout_keys)
            counters.remember_read_ahead(lockout_keys, values)
            return
        merchant_id = caller.own_merchant_id
        version_keys = [versions.key(merchant_id, name) for name in CACHED_PER_MERCHANT]
        lockout_keys = self.read_ahead_keys(request)
        values = ratelimits.admit(
            request, api_key_id=caller.api_key_id, reads=lockout_keys + version_keys
        )
        counters.remember_read_ahead(lockout_keys, values)
        versions.remember(values, version_keys)
        authentication.revalidate(request, versions.current(merchant_id, versions.API_KEYS))

    def read_ahead_keys(self, request) -> list[str]:
        """Lockout keys of the caller and the end customer named in the body (not validated
        yet: a key that differs from the validated one is just read again later)."""
        if (
            self.lockout_action is None or not isinstance(request.data, dict)
            or fraud_conf.get("FRAUD_CACHE_ALIAS") != settings.RATELIMIT_USE_CACHE
        ):
            return []
        raw = {name: request.data.get(name) for name in ("customer", "ip", "device_id", "email")}
        customer = CustomerContext(**{k: v if isinstance(v, str) else "" for k, v in raw.items()})
        ctx = risk.context_for(caller=request.user, customer=customer, action=self.lockout_action)
        return [scope.lock_key for scope in lockouts.scopes_for(ctx)]

    @property
    def caller(self) -> Caller:
        user = self.request.user
        if not isinstance(user, Caller):  # the permission classes let only callers in
            raise NotAuthenticated
        return user

    def validated(self, serializer_class, data=None) -> dict:
        serializer = serializer_class(data=self.request.data if data is None else data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    @staticmethod
    def customer_context(data: dict) -> CustomerContext:
        return CustomerContext(
            customer=data.get("customer", ""), ip=data.get("ip") or "",
            device_id=data.get("device_id", ""), email=data.get("email", ""),
        )


class IdempotentApiView(StorefrontApiView):
    """A POST that changes state: requires Idempotency-Key and has one effect per key.

    Subclasses define `perform(request, *args, **kwargs) -> Response` (validate, call
    one service). The transaction is `respond_once`'s (docs/transactions.md).
    """

    def perform(self, request, *args, **kwargs) -> Response:
        raise NotImplementedError

    def post(self, request, *args, **kwargs):
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        if not 1 <= len(key) <= 255:
            raise IdempotencyKeyRequired(f"Send an {IDEMPOTENCY_HEADER} header of 1 to 255 characters.")
        return respond_once(
            caller=self.caller.identity, key=key,
            fingerprint=idempotency.fingerprint(method=request.method, path=request.path, body=request.data),
            perform=lambda: self.perform(request, *args, **kwargs),
        )
