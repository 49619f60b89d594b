"""Domain errors. Each carries the stable machine-readable code the API promises (docs/api.md).

`rollback` says whether the request's transaction must be rolled back when the error
reaches the API boundary. It is False only where the service deliberately keeps what
it did before refusing (a reservation it found expired is released; a failed attempt
on an unknown code is recorded for lockouts and leak detection).
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _


class DomainError(Exception):
    code = "domain_error"
    status = 400
    title = _("Request refused")
    rollback = True

    def __init__(self, detail: str = "", **extra) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class InvalidBatchSettings(DomainError):
    code = "invalid_batch_settings"
    title = _("Batch settings refused")


class ImportRejected(DomainError):
    """An import file had bad rows; `report` lists (line, reason). Nothing was stored."""

    code = "import_rejected"
    title = _("Import rejected")

    def __init__(self, detail: str, *, report: list[tuple[int, str]], bad_rows: int) -> None:
        super().__init__(detail)
        self.report = report
        self.bad_rows = bad_rows


# --- storefront API ---------------------------------------------------------------

class UnknownProduct(DomainError):
    code = "unknown_product"
    status = 404
    title = _("Unknown product")


class OutOfStock(DomainError):
    """Fewer codes in stock than requested; carries `available`."""

    code = "out_of_stock"
    status = 409
    title = _("Out of stock")


class NotFound(DomainError):
    """The object does not exist for this caller (another tenant's looks the same)."""

    code = "not_found"
    status = 404
    title = _("Not found")


class InvalidState(DomainError):
    code = "invalid_state"
    status = 409
    title = _("Not allowed in the current state")


class ReservationExpired(DomainError):
    code = "reservation_expired"
    status = 409
    title = _("Reservation expired")
    rollback = False  # the expired reservation has been released; keep that


class UnknownCode(DomainError):
    code = "unknown_code"
    status = 404
    title = _("Unknown code")
    rollback = False  # the failed attempt is recorded for lockouts and leak detection


class AlreadyRedeemed(DomainError):
    """Carries `redeemed_at` of the live redemption."""

    code = "already_redeemed"
    status = 409
    title = _("Code already redeemed")


class CodeExpired(DomainError):
    code = "code_expired"
    status = 410
    title = _("Code expired")


class CodeVoid(DomainError):
    code = "code_void"
    status = 409
    title = _("Code void")


class AlreadyReversed(DomainError):
    code = "already_reversed"
    status = 409
    title = _("Redemption already reversed")


class ReversalWindowClosed(DomainError):
    code = "reversal_window_closed"
    status = 409
    title = _("Reversal window closed")
