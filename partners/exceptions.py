"""Settlement's domain errors, each with the stable code of the API contract."""

from __future__ import annotations

from vouchers.exceptions import DomainError, NotFound

__all__ = [
    "AgreementVersionInUse",
    "AgreementVersionOverlap",
    "ContentMismatch",
    "DisputeWindowClosed",
    "InvalidAgreementTerms",
    "NotFound",
    "StatementInvalidState",
]


class AgreementVersionOverlap(DomainError):
    pass


class AgreementVersionInUse(DomainError):
    """A version that has priced an event is never edited: add a new version from a date."""


class InvalidAgreementTerms(DomainError):
    pass


class InvalidRequest(DomainError):
    """A request body the API cannot use; carries `errors` like a validation error."""


class StatementInvalidState(DomainError):
    pass


class ContentMismatch(DomainError):
    pass


class DisputeWindowClosed(DomainError):
    pass
