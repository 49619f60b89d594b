"""Every error the service can answer with (its stable `code`, HTTP status and title, once),
and `DomainError`, the base class of the refusals of every app.

The domain errors (`DomainError` and its subclasses in vouchers, fraud and partners)
take their code, status and title from this table by class name:
a subclass declares only its behaviour (`rollback`, extra fields) and fails at import
if it is missing here or sets any of the three itself. The API's exception handler
answers with these values (`vouchers.api.errors`), and the OpenAPI schema is checked
against them and lists them (`vouchers.api.schema.document_error_codes`), so the
contract, the answers and the documentation cannot drift apart.

A code is stable: clients branch on it. Several errors may share a code (each
`invalid_state` says what was refused in its title), but a code has one HTTP status.
Titles are translated (zh_Hans) in the request's language; `bad_request` is written by
the middleware before a language is chosen and stays English.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise as StrPromise


@dataclass(frozen=True)
class ErrorType:
    code: str
    # None only for `error`: a DRF or Django HTTP error this table does not name keeps
    # the status it was raised with.
    status: int | None
    title: str | StrPromise


ERROR_TYPES: dict[str, ErrorType] = {
    # The base: a refusal with nothing more specific to say.
    "DomainError": ErrorType("domain_error", 400, _("Request refused")),
    # Answers of the API boundary (vouchers.api.errors), for DRF's and Django's errors.
    "RequestNotValid": ErrorType("invalid_request", 400, _("Invalid request")),
    "NotAuthenticated": ErrorType("not_authenticated", 401, _("Not authenticated")),
    "PermissionDenied": ErrorType("permission_denied", 403, _("Permission denied")),
    "MethodNotAllowed": ErrorType("method_not_allowed", 405, _("Method not allowed")),
    "NotAcceptable": ErrorType("not_acceptable", 406, _("Not acceptable")),
    "UnsupportedMediaType": ErrorType("unsupported_media_type", 415, _("Unsupported media type")),
    "HttpError": ErrorType("error", None, _("Error")),
    "InternalError": ErrorType("internal_error", 500, _("Internal server error")),
    # Written by vouchers.api.middleware for answers Django gives before any view runs.
    "BadRequest": ErrorType("bad_request", 400, "Bad request"),
    # The storefront API's admission and idempotency (vouchers.api.errors).
    "RateLimited": ErrorType("rate_limited", 429, _("Too many requests")),
    "RateLimiterUnavailable": ErrorType("service_unavailable", 503, _("Service temporarily unavailable")),
    "IdempotencyKeyRequired": ErrorType(
        "idempotency_key_required", 400, _("Idempotency-Key header required")),
    "IdempotencyKeyReused": ErrorType(
        "idempotency_key_reused", 422, _("Idempotency-Key reused with a different request")),
    "IdempotencyInProgress": ErrorType(
        "idempotency_in_progress", 409, _("A request with this Idempotency-Key is still running")),
    "PayloadTooLarge": ErrorType("payload_too_large", 413, _("Payload too large")),
    # Vouchers (vouchers.exceptions).
    "InvalidBatchSettings": ErrorType("invalid_batch_settings", 400, _("Batch settings refused")),
    "ImportRejected": ErrorType("import_rejected", 400, _("Import rejected")),
    "UnknownProduct": ErrorType("unknown_product", 404, _("Unknown product")),
    "OutOfStock": ErrorType("out_of_stock", 409, _("Out of stock")),
    "NotFound": ErrorType("not_found", 404, _("Not found")),
    "InvalidState": ErrorType("invalid_state", 409, _("Not allowed in the current state")),
    "ReservationExpired": ErrorType("reservation_expired", 409, _("Reservation expired")),
    "UnknownCode": ErrorType("unknown_code", 404, _("Unknown code")),
    "AlreadyRedeemed": ErrorType("already_redeemed", 409, _("Code already redeemed")),
    "CodeExpired": ErrorType("code_expired", 410, _("Code expired")),
    "CodeVoid": ErrorType("code_void", 409, _("Code void")),
    "AlreadyReversed": ErrorType("already_reversed", 409, _("Redemption already reversed")),
    "ReversalWindowClosed": ErrorType("reversal_window_closed", 409, _("Reversal window closed")),
    # Vouchers' staff services (vouchers.services.*).
    "ValidityNotExtended": ErrorType(
        "validity_not_extended", 409, _("The batch's validity was not extended")),
    "InvalidAPIKeyName": ErrorType("invalid_request", 400, _("An API key needs a name")),
    "APIKeyAlreadyRevoked": ErrorType("already_revoked", 409, _("This API key is already revoked")),
    "RevealReasonRequired": ErrorType("reason_required", 400, _("A reason is required to reveal a code")),
    "RevealNotAllowed": ErrorType("permission_denied", 403, _("Revealing codes needs the reveal permission")),
    "InvalidBatchTransition": ErrorType("invalid_state", 409, _("Batch status change refused")),
    "VoidReasonRequired": ErrorType("reason_required", 400, _("A reason is required to void a batch")),
    # Webhooks (vouchers.webhooks.services.endpoints).
    "InvalidEndpoint": ErrorType("invalid_request", 400, _("Invalid webhook endpoint")),
    # Fraud (fraud.exceptions, fraud.services.lockouts).
    "FraudDenied": ErrorType("fraud_denied", 403, _("Refused by fraud checks")),
    "TooManyAttempts": ErrorType("too_many_attempts", 429, _("Too many failed attempts")),
    "RiskCheckUnavailable": ErrorType("risk_unavailable", 429, _("Fraud checks temporarily unavailable")),
    "LockoutNotActive": ErrorType("not_locked", 409, _("This lockout is no longer active")),
    "NotALockout": ErrorType("invalid_state", 409, _("This fraud event is not a lockout")),
    # Settlement (partners.exceptions).
    "AgreementVersionOverlap": ErrorType("agreement_version_overlap", 409, _("Agreement versions overlap")),
    "AgreementVersionInUse": ErrorType("agreement_version_in_use", 409, _("Agreement version already used")),
    "InvalidAgreementTerms": ErrorType("invalid_agreement_terms", 400, _("Agreement terms refused")),
    "InvalidRequest": ErrorType("invalid_request", 400, _("Invalid request")),
    "StatementInvalidState": ErrorType("invalid_state", 409, _("Invalid state")),
    "ContentMismatch": ErrorType("content_mismatch", 409, _("Content hash does not match")),
    "DisputeWindowClosed": ErrorType("dispute_window_closed", 409, _("Dispute window closed")),
}


def _status_by_code() -> dict[str, int | None]:
    statuses: dict[str, int | None] = {}
    for name, error in ERROR_TYPES.items():
        if statuses.setdefault(error.code, error.status) != error.status:
            raise ValueError(f"{name}: code {error.code!r} already has status {statuses[error.code]}")
    return statuses


# One status per code (checked when this module loads).
STATUS_BY_CODE: dict[str, int | None] = _status_by_code()


def error_type(name: str) -> ErrorType:
    """The entry of the error called `name` (a DomainError subclass or a boundary answer)."""
    try:
        return ERROR_TYPES[name]
    except KeyError:
        raise LookupError(f"{name} is not declared in config.errors.ERROR_TYPES") from None


# --- the base of every domain error ------------------------------------------------
#
# `rollback` says whether the request's transaction must be rolled back when the error
# reaches the API boundary. It is False only where the service deliberately keeps what
# it did before refusing (a reservation it found expired is released; a failed attempt
# on an unknown code is recorded for lockouts and leak detection).

_ERROR_FIELDS = ("code", "status", "title")


class DomainError(Exception):
    """A refusal. Its `code`, `status` and `title` come from ERROR_TYPES above.

    A subclass is looked up there by its class name when it is defined, and may not
    set those three itself: they are declared once, in that table.
    """

    code: str
    status: int
    title: str | StrPromise
    rollback = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = [name for name in _ERROR_FIELDS if name in vars(cls)]
        if declared:
            raise TypeError(f"{cls.__name__} sets {', '.join(declared)}: "
                            "declare them in config.errors")
        _take_error_type(cls)

    def __init__(self, detail: str | StrPromise = "", **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail: str | StrPromise = detail or self.title
        self.extra = extra


def _take_error_type(cls: type[DomainError]) -> None:
    error = error_type(cls.__name__)
    if error.status is None:
        raise TypeError(f"{cls.__name__}: a domain error needs a fixed status")
    cls.code, cls.status, cls.title = error.code, error.status, error.title


_take_error_type(DomainError)


class NotFound(DomainError):
    """The object does not exist for this caller (another tenant's looks the same): every app's 404."""
