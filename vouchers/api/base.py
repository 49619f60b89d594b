"""Base API views: authentication, rate limits, and idempotent POSTs."""

from __future__ import annotations

from django.db import transaction
from django.http import Http404
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from vouchers.api import ratelimits
from vouchers.api.authentication import ApiKeyAuthentication
from vouchers.api.errors import (
    PROBLEM,
    IdempotencyInProgress,
    IdempotencyKeyRequired,
    IdempotencyKeyReused,
    problem_response,
)
from vouchers.callers import Caller, CustomerContext
from vouchers.exceptions import DomainError
from vouchers.services import idempotency

IDEMPOTENCY_HEADER = "Idempotency-Key"
TRANSIENT_STATUSES = {429, 503}


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

    Subclasses define `perform(request, *args, **kwargs) -> Response`. The effect and
    the completed record commit in one transaction. Services nest their blocks in it
    with `atomic(savepoint=False)`: an error they raise rolls the whole request back,
    and the errors that keep work (rollback=False) are raised after their block closed,
    so no savepoint round trips are needed on the hot path.
    """

    def post(self, request, *args, **kwargs):
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        if not 1 <= len(key) <= 255:
            raise IdempotencyKeyRequired(f"Send an {IDEMPOTENCY_HEADER} header of 1 to 255 characters.")
        fingerprint = idempotency.fingerprint(method=request.method, path=request.path, body=request.data)
        claim = idempotency.claim(caller=self.caller.identity, key=key, fingerprint=fingerprint)
        if claim.outcome == "mismatch":
            raise IdempotencyKeyReused("This Idempotency-Key was used with a different request.")
        if claim.outcome == "replay":
            return self._replay(claim.record)
        if claim.outcome == "in_progress":
            raise IdempotencyInProgress("The first request with this key is still running; retry later.")
        return self._run(claim.record, request, *args, **kwargs)

    def _run(self, record, request, *args, **kwargs):
        try:
            with transaction.atomic(durable=True):
                locked = idempotency.lock_for_run(record)
                if locked is None:
                    raise IdempotencyInProgress("The first request with this key is still running.")
                try:
                    response = self.perform(request, *args, **kwargs)
                except DomainError as exc:
                    if exc.rollback:
                        raise
                    response = problem_response(exc)  # the service kept its work on purpose
                idempotency.complete(locked, status=response.status_code, body=response.data)
                return response
        except idempotency.AlreadyCompleted:
            record.refresh_from_db()
            return self._replay(record)
        except IdempotencyInProgress:
            raise
        except DomainError as exc:
            # Rolled back, so nothing happened. A lasting refusal is this key's answer; a
            # passing one (rate limits, lockouts, unavailable) must not stick to the key.
            if exc.status in TRANSIENT_STATUSES:
                idempotency.forget(record)
                raise
            response = problem_response(exc)
            idempotency.complete(record, status=response.status_code, body=response.data)
            return response
        except BaseException:
            idempotency.forget(record)
            raise

    @staticmethod
    def _replay(record) -> Response:
        body = idempotency.restore_codes(record.response_body)
        response = Response(
            body, status=record.response_status,
            content_type=PROBLEM if record.response_status >= 400 else None,
        )
        response["Idempotent-Replayed"] = "true"
        return response
