"""Base API views: authentication, rate limits, and idempotent POSTs."""

from __future__ import annotations

from rest_framework.permissions import BasePermission
from rest_framework.views import APIView

from vouchers.api import ratelimits
from vouchers.api.authentication import ApiKeyAuthentication
from vouchers.api.errors import IdempotencyKeyRequired
from vouchers.api.idempotent import respond_once
from vouchers.callers import Caller, CustomerContext
from vouchers.services import idempotency

IDEMPOTENCY_HEADER = "Idempotency-Key"


class IsStorefront(BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, Caller) and request.user.kind == "storefront"


class StorefrontApiView(APIView):
    """Authenticated as a storefront; limited per connection address and per API key."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsStorefront]

    def initial(self, request, *args, **kwargs):
        # The address limit runs before authentication, so key guessing is limited too.
        ratelimits.limit_by_address(request)
        super().initial(request, *args, **kwargs)
        ratelimits.limit_by_key(request, api_key_id=request.user.api_key_id)

    @property
    def caller(self) -> Caller:
        return self.request.user

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

    def post(self, request, *args, **kwargs):
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        if not 1 <= len(key) <= 255:
            raise IdempotencyKeyRequired(f"Send an {IDEMPOTENCY_HEADER} header of 1 to 255 characters.")
        return respond_once(
            caller=self.caller.identity, key=key,
            fingerprint=idempotency.fingerprint(method=request.method, path=request.path, body=request.data),
            perform=lambda: self.perform(request, *args, **kwargs),
        )
