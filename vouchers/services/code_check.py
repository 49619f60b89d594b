"""Checking a code's status without changing it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from config.callers import Caller, CustomerContext
from vouchers import fastpath
from vouchers.fastpath import check as fast_check
from vouchers.models import Batch, Code
from vouchers.services import attempts
from vouchers.validity import code_expires_at, is_expired


@dataclass(frozen=True)
class CodeStatus:
    status: str  # issued | redeemed | expired | void
    sku: str
    expires_at: datetime | None
    redeemed_at: datetime | None


def check_code(*, caller: Caller, code: str, context: CustomerContext | None = None) -> CodeStatus:
    """What a customer's code is worth now.

    Raises TooManyAttempts, RiskCheckUnavailable, UnknownCode, FraudDenied.
    """
    row, decision = attempts.find_usable_code(
        caller=caller, raw=code, context=context or CustomerContext(), action="check"
    )
    if decision.pk is None:  # an allow, deferred: the check's one write, one INSERT in autocommit
        if fastpath.enabled():
            fast_check.keep(decision)  # vouchers/fastpath/check.py
        else:
            decision.save(force_insert=True)
    batch: Batch = row.batch
    if row.state == Code.State.REDEEMED:
        status = "redeemed"
    elif row.state == Code.State.VOID or batch.status == Batch.Status.VOID:
        status = "void"
    elif is_expired(row, batch, timezone.now()):
        status = "expired"
    else:
        status = "issued"
    return CodeStatus(
        status=status, sku=batch.product.sku, expires_at=code_expires_at(row, batch),
        redeemed_at=row.redeemed_at,
    )
