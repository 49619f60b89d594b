"""Finding a code a caller typed, and treating every miss as a failed attempt.

Check and redemption share this. The caller's lockouts are checked before the code
is even looked up. A code that is unknown to the caller, still in stock, reserved,
or a canary is answered exactly like an unknown code (404 `unknown_code`), so a
guesser learns nothing; behind the scenes each miss is counted towards lockouts, and
a never-issued code or a canary raises a leak event for the merchant.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NoReturn

from django.db import transaction
from django.utils.translation import gettext_lazy as _

from config.callers import Caller, CustomerContext
from fraud.models import RiskAssessment
from partners.selectors import partner_honours_product
from vouchers import selectors
from vouchers.exceptions import UnknownCode
from vouchers.models import Code
from vouchers.services import risk

NEVER_ISSUED_STATES = (Code.State.AVAILABLE, Code.State.RESERVED)


def find_usable_code(
    *, caller: Caller, raw: str, context: CustomerContext, action: str
) -> tuple[Code, RiskAssessment]:
    """The caller's issued (or formerly issued) code for what was typed, and the risk decision.

    An allowing decision comes back unsaved (deferred): the caller writes it with its
    effect (the redemption) or on its own (the check).

    Raises TooManyAttempts, RiskCheckUnavailable, UnknownCode (the miss is recorded and
    kept), FraudDenied (the decision is kept).
    """
    ctx = risk.context_for(caller=caller, customer=context, action=action)
    risk.ensure_not_locked_out(ctx)
    row = selectors.find_code(raw)
    if row is None or not _may_use(caller, row):
        _miss(ctx, None)
    if row.is_canary or row.state in NEVER_ISSUED_STATES:
        _miss(ctx, row)
    if caller.kind == "partner":  # settlement: a partner acts on the product's merchant's codes
        caller = replace(caller, merchant_id=row.batch.product.merchant_id)
    decision = risk.assess_or_refuse(
        risk.context_for(caller=caller, customer=context, action=action, product_id=row.batch.product_id),
        # an allow is written with the redemption, or by the check (code_check.check_code)
        defer_allow=True,
    )
    return row, decision


def _may_use(caller: Caller, row: Code) -> bool:
    """A storefront uses its merchant's codes; a partner those of products it honours."""
    if caller.kind == "partner":
        return partner_honours_product(partner_id=caller.own_partner_id, product_id=row.batch.product_id)
    return row.batch.product.merchant_id == caller.merchant_id


def _miss(ctx, row: Code | None) -> NoReturn:
    with transaction.atomic(savepoint=False):
        risk.report_miss(ctx, code=row)
    raise UnknownCode(_("No such code."))
