"""The voucher services' domain errors. Each carries the stable machine-readable code the API
promises (docs/api.md); its code, HTTP status and title are declared once, in
`config/errors.py`, next to their base class `DomainError`.
"""

from __future__ import annotations

from config.errors import DomainError


class InvalidBatchSettings(DomainError):
    """400 `invalid_batch_settings`: batch settings refused."""


class ImportRejected(DomainError):
    """An import file had bad rows; `report` lists (line, reason). Nothing was stored."""

    def __init__(self, detail: str, *, report: list[tuple[int, str]], bad_rows: int) -> None:
        super().__init__(detail)
        self.report = report
        self.bad_rows = bad_rows


# --- storefront API ---------------------------------------------------------------

class UnknownProduct(DomainError):
    """404 `unknown_product`: unknown product."""


class OutOfStock(DomainError):
    """Fewer codes in stock than requested; carries `available`."""


class InvalidState(DomainError):
    """409 `invalid_state`: not allowed in the current state."""


class ReservationExpired(DomainError):
    rollback = False  # the expired reservation has been released; keep that


class UnknownCode(DomainError):
    rollback = False  # the failed attempt is recorded for lockouts and leak detection


class AlreadyRedeemed(DomainError):
    """Carries `redeemed_at` of the live redemption."""


class CodeExpired(DomainError):
    """410 `code_expired`: code expired."""


class CodeVoid(DomainError):
    """409 `code_void`: code void."""


class AlreadyReversed(DomainError):
    """409 `already_reversed`: redemption already reversed."""


class ReversalWindowClosed(DomainError):
    """409 `reversal_window_closed`: reversal window closed."""
