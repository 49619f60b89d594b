"""Refusals the fraud checks raise; the API maps each to its problem response."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from config.errors import DomainError


class FraudDenied(DomainError):
    """The risk assessment denied the request. `.extra["reasons"]` lists reason codes.

    `rollback = False`: the stored decision (assessment and event) is kept when the
    request is refused.
    """

    rollback = False

    def __init__(self, detail: str = "", *, reasons: list[str]) -> None:
        super().__init__(detail or _("The request was refused by fraud checks."), reasons=list(reasons))
        self.reasons = list(reasons)

    @classmethod
    def for_assessment(cls, assessment) -> FraudDenied:
        return cls(reasons=list(assessment.reasons))


class TooManyAttempts(DomainError):
    """Too many failed attempts from this API key, customer or IP; retry after `retry_after` s."""

    def __init__(self, detail: str = "", *, retry_after: int) -> None:
        retry_after = max(int(retry_after), 1)
        super().__init__(
            detail or _("Too many failed attempts; retry in %(seconds)s seconds.") % {"seconds": retry_after},
            retry_after=retry_after,
        )
        self.retry_after = retry_after


class RiskCheckUnavailable(DomainError):
    """The counter store (Redis) is unreachable: the request is refused, never waved through.

    429 with Retry-After, so clients back off and retry as they do for any limit.
    """

    def __init__(self, detail: str = "", *, retry_after: int | None = None) -> None:
        from fraud import conf

        retry_after = int(retry_after or conf.get("FRAUD_UNAVAILABLE_RETRY_AFTER"))
        super().__init__(
            detail or _("Fraud checks are temporarily unavailable; retry later."), retry_after=retry_after
        )
        self.retry_after = retry_after


class LockoutReasonRequired(ValueError):
    """Lifting a lockout needs a reason and none was given (a form error, never an API answer)."""
