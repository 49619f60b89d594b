"""Domain errors. Each carries the stable machine-readable code the API promises (docs/api.md);
its code, HTTP status and title are declared once, in `vouchers/error_types.py`.

`rollback` says whether the request's transaction must be rolled back when the error
reaches the API boundary. It is False only where the service deliberately keeps what
it did before refusing (a reservation it found expired is released; a failed attempt
on an unknown code is recorded for lockouts and leak detection).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vouchers.error_types import error_type

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise as StrPromise

_ERROR_FIELDS = ("code", "status", "title")


class DomainError(Exception):
    """A refusal. Its `code`, `status` and `title` come from `vouchers.error_types`.

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
                            "declare them in vouchers.error_types")
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


class NotFound(DomainError):
    """The object does not exist for this caller (another tenant's looks the same)."""


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
