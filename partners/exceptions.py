"""Settlement's domain errors, each with the stable code of the API contract."""

from __future__ import annotations

from config.errors import DomainError, NotFound

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
    """409 `agreement_version_overlap`: agreement versions overlap."""


class AgreementVersionInUse(DomainError):
    """A version that has priced an event is never edited: add a new version from a date."""


class InvalidAgreementTerms(DomainError):
    """400 `invalid_agreement_terms`: agreement terms refused."""


class InvalidRequest(DomainError):
    """A request body the API cannot use; carries `errors` like a validation error."""


class StatementInvalidState(DomainError):
    """409 `invalid_state`: invalid state."""


class ContentMismatch(DomainError):
    """409 `content_mismatch`: content hash does not match."""


class DisputeWindowClosed(DomainError):
    """409 `dispute_window_closed`: dispute window closed."""
