"""Leak signals: someone used a code that no customer can have received.

A never-issued code (still in stock or only reserved) and a canary code are both
answered as an unknown code, so the user learns nothing; here they are recorded as
a possible (high) or certain (critical) leak of the batch's stock, the merchant's
staff are alerted (at most one mail per batch and kind every
FRAUD_ALERT_THROTTLE_SECONDS; every use is an event), and the attempt counts as a
failed attempt for lockouts. Do not call `record_failed_attempt` as well.

If the counter store is down the event is still written and the use is still refused
(the caller answers unknown_code); only the lockout count is lost, and the next
attempt meets `ensure_not_locked_out` failing closed.
"""

from __future__ import annotations

import logging

from fraud.context import RiskContext
from fraud.exceptions import RiskCheckUnavailable
from fraud.models import FraudEvent
from fraud.services.events import record_fraud_event
from fraud.services.lockouts import record_failed_attempt

logger = logging.getLogger("fraud.leaks")


def _code_facts(code_id: int) -> dict:
    """What an event may say about a code: its id, last 4 characters and state. Never the code."""
    from vouchers.models import Code

    row = Code.objects.filter(pk=code_id).values("last4", "state").first() or {}
    return {"code_id": code_id, "code_last4": row.get("last4", ""), "code_state": row.get("state", "")}


def report_unissued_code_use(*, ctx: RiskContext, code_id: int, batch_id: int) -> None:
    """A code that exists but was never issued was checked or redeemed: possible leak.

    Writes a high-severity event naming the batch, queues an alert after commit and
    counts a failed attempt. Raises nothing of its own.
    """
    record_fraud_event(
        merchant_id=ctx.merchant_id, severity=FraudEvent.Severity.HIGH,
        kind=FraudEvent.Kind.UNISSUED_CODE_USE, decision=FraudEvent.Decision.REFUSED,
        context={**ctx.as_json(), **_code_facts(code_id), "batch_id": batch_id},
        batch_id=batch_id, alert_throttle=f"batch:{batch_id}",
    )
    _count_failure(ctx, "not_issued")


def report_canary_use(*, ctx: RiskContext, code_id: int, batch_id: int) -> None:
    """A canary code was checked or redeemed: the batch's stock has leaked.

    Writes a critical event naming the batch, queues an alert after commit and counts
    a failed attempt. Raises nothing of its own.
    """
    record_fraud_event(
        merchant_id=ctx.merchant_id, severity=FraudEvent.Severity.CRITICAL,
        kind=FraudEvent.Kind.CANARY_USE, decision=FraudEvent.Decision.REFUSED,
        context={**ctx.as_json(), **_code_facts(code_id), "batch_id": batch_id},
        batch_id=batch_id, alert_throttle=f"batch:{batch_id}",
    )
    _count_failure(ctx, "canary")


def _count_failure(ctx: RiskContext, reason: str) -> None:
    try:
        record_failed_attempt(ctx=ctx, reason=reason)
    except RiskCheckUnavailable:
        logger.error("leak event recorded but its failed attempt was not counted: counter store down")
