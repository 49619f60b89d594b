"""The voucher services' one door into fraud checks (vouchers calls fraud: docs/architecture.md).

Builds the fraud context from the caller and the end customer, hands over the facts
fraud may know of the voucher tables (how to count a customer's previous orders, the
facts of a code in hand), and turns the assessment into what the voucher services act
on. fraud never reads these tables itself.
"""

from __future__ import annotations

from config import metrics
from config.callers import Caller, CustomerContext
from fraud.context import CodeFacts, RiskContext
from fraud.exceptions import FraudDenied
from fraud.models import Outcome, RiskAssessment
from fraud.services import assessment, leaks, lockouts
from vouchers.models import Code, Issuance


def context_for(
    *, caller: Caller, customer: CustomerContext, action: str, product_id: int | None = None,
    quantity: int = 1,
) -> RiskContext:
    return RiskContext(
        merchant_id=caller.merchant_id, action=action, api_key_id=str(caller.api_key_id),
        storefront_id=caller.storefront_id, partner_id=caller.partner_id,
        customer=customer.customer, ip=customer.ip, device_id=customer.device_id,
        email=customer.email, product_id=product_id, quantity=quantity,
        previous_orders=previous_orders,
    )


def previous_orders(*, merchant_id: int, customer: str, at_most: int) -> int:
    """The customer's issued orders at the merchant, counted up to `at_most` (one query).

    Handed to fraud in the context; a first-orders rule asks it only when it needs it.
    """
    return (
        Issuance.objects.filter(
            storefront__merchant_id=merchant_id, customer=customer, status=Issuance.Status.ISSUED,
        ).values("pk")[:at_most].count()
    )


def assess_or_refuse(ctx: RiskContext, *, defer_allow: bool = False) -> RiskAssessment:
    """Store a decision for `ctx`; a deny raises. Raises FraudDenied, RiskCheckUnavailable.

    `defer_allow`: an allow is returned unsaved and written with the effect it judged
    (`attach`, or the fast path's statement); see fraud.services.assessment.assess.
    """
    decision = assessment.assess(ctx=ctx, defer_allow=defer_allow)
    metrics.FRAUD_DECISIONS.labels(outcome=decision.outcome).inc()
    if decision.outcome == Outcome.DENY:
        raise FraudDenied.for_assessment(decision)
    return decision


def needs_review(decision: RiskAssessment) -> bool:
    return decision.outcome == Outcome.REVIEW


def attach(decision: RiskAssessment, *, issuance_id=None, redemption_id=None) -> None:
    assessment.attach_assessment(
        assessment=decision, issuance_id=issuance_id, redemption_id=redemption_id
    )


def ensure_not_locked_out(ctx: RiskContext) -> None:
    """Raises TooManyAttempts, RiskCheckUnavailable."""
    lockouts.ensure_not_locked_out(ctx=ctx)


def report_miss(ctx: RiskContext, *, code: Code | None) -> None:
    """A failed attempt: unknown code, never issued (possible leak) or a canary (leak)."""
    if code is None:
        lockouts.record_failed_attempt(ctx=ctx, reason="unknown_code")
    elif code.is_canary:
        leaks.report_canary_use(ctx=ctx, code=code_facts(code))
    else:
        leaks.report_unissued_code_use(ctx=ctx, code=code_facts(code))


def code_facts(code: Code) -> CodeFacts:
    """What a leak event may say of a code (read from the row in hand: no query)."""
    return CodeFacts(code_id=code.pk, batch_id=code.batch_id, last4=code.last4, state=code.state)
