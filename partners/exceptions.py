"""Settlement's domain errors, each with the stable code of the API contract."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

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
    code = "agreement_version_overlap"
    status = 409
    title = _("Agreement versions overlap")


class AgreementVersionInUse(DomainError):
    """A version that has priced an event is never edited: add a new version from a date."""

    code = "agreement_version_in_use"
    status = 409
    title = _("Agreement version already used")


class InvalidAgreementTerms(DomainError):
    code = "invalid_agreement_terms"
    title = _("Agreement terms refused")


class InvalidRequest(DomainError):
    """A request body the API cannot use; carries `errors` like a validation error."""

    code = "invalid_request"
    title = _("Invalid request")


class StatementInvalidState(DomainError):
    code = "invalid_state"
    status = 409
    title = _("Invalid state")


class ContentMismatch(DomainError):
    code = "content_mismatch"
    status = 409
    title = _("Content hash does not match")


class DisputeWindowClosed(DomainError):
    code = "dispute_window_closed"
    status = 409
    title = _("Dispute window closed")
