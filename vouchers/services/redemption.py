"""Redeeming an issued code exactly once, and reversing a redemption."""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from config.callers import Caller, CustomerContext
from config.errors import NotFound
from partners.services import ledger
from vouchers import fastpath, locks
from vouchers.exceptions import (
    AlreadyRedeemed,
    AlreadyReversed,
    CodeExpired,
    CodeVoid,
    ReversalWindowClosed,
)
from vouchers.fastpath import redeem as fast_redeem
from vouchers.fastpath import reverse as fast_reverse
from vouchers.models import Batch, Code, Redemption
from vouchers.services import attempts, risk, stock
from vouchers.services.events import record_event
from vouchers.validity import is_expired
from vouchers.webhooks.services import outbox as webhooks


def redeem_code(
    *, caller: Caller, code: str, order_ref: str = "", location: str = "",
    context: CustomerContext | None = None,
) -> Redemption:
    """Redeem one issued code; a second redemption of it is refused.

    The conditional UPDATE (`state = 'issued'`) is the check; the unique constraint on
    a live redemption per code is the backstop. The batch's status and validity window
    are read at this moment.
    Raises TooManyAttempts, RiskCheckUnavailable, UnknownCode, FraudDenied,
    AlreadyRedeemed, CodeExpired, CodeVoid.
    """
    context = context or CustomerContext()
    row, decision = attempts.find_usable_code(caller=caller, raw=code, context=context, action="redeem")
    with transaction.atomic(savepoint=False):
        now = timezone.now()
        if fastpath.enabled():
            return _redeem_fast(caller=caller, row=row, decision=decision, order_ref=order_ref,
                                location=location, now=now)
        batch = Batch.objects.select_related("product").get(pk=row.batch_id)
        _refuse_unless_redeemable(row, batch, now)
        updated = Code.objects.filter(pk=row.pk, state=Code.State.ISSUED).update(
            state=Code.State.REDEEMED, redeemed_at=now, state_changed_at=now
        )
        if updated == 0:
            row.refresh_from_db(fields=["state", "redeemed_at"])
            _refuse_unless_redeemable(row, batch, now)
            raise AlreadyRedeemed(_("The code has already been redeemed."))
        try:
            redemption = Redemption.objects.create(
                code=row, storefront_id=caller.storefront_id, partner_id=caller.partner_id,
                order_ref=order_ref, location=location, redeemed_at=now,
            )
        except IntegrityError:  # unreachable while the UPDATE above holds; the backstop
            raise AlreadyRedeemed(_("The code has already been redeemed.")) from None  # rolls back all
        risk.attach(decision, redemption_id=redemption.pk)
        # HOOK (docs/transactions.md): after the effect, inside the transaction. Another
        # app's recorder (a partner ledger entry) is called here with redemption.pk,
        # row.pk, batch.product_id, row.issuance_id and `now`.
        stock.record_move(batch_id=row.batch_id, from_state=Code.State.ISSUED, to_state=Code.State.REDEEMED)
        record_event(
            action="redeemed", actor=caller.identity, code=row, issuance_id=row.issuance_id,
            from_state=Code.State.ISSUED, to_state=Code.State.REDEEMED,
            details={"redemption": str(redemption.pk)},
        )
        # settlement: price the redemption (partners.services.ledger)
        ledger.record_redemption(redemption=redemption, product=batch.product, code_last4=row.last4,
                                 actor=caller.identity, fresh=True)
        webhooks.redemption_changed(redemption, event_type="code.redeemed")
    redemption.code = row
    row.batch = batch
    return redemption


def _redeem_fast(*, caller: Caller, row: Code, decision, order_ref: str, location: str, now) -> Redemption:
    """PostgreSQL: the whole redemption in one statement (vouchers/fastpath/redeem.py).

    No row back means nothing was written: one read explains why.
    """
    redemption = fast_redeem.redeem(
        code=row, storefront_id=caller.storefront_id, partner_id=caller.partner_id,
        order_ref=order_ref, location=location, assessment=decision, actor=caller.identity, now=now,
    )
    if redemption is None:
        row.refresh_from_db(fields=["state", "redeemed_at", "expires_at"])
        _refuse_unless_redeemable(row, Batch.objects.get(pk=row.batch_id), now)
        raise AlreadyRedeemed("The code has already been redeemed.")
    # HOOK (docs/transactions.md): after the effect, inside the transaction, with
    # redemption.pk, row.pk, row.batch.product_id, row.issuance_id and `now`. A recorder
    # that must live in the statement itself joins REDEEM_SQL as one more CTE.
    # settlement: price the redemption (partners.services.ledger), as the transaction's
    # last step when the request runs one: the partner's chain head is then locked only
    # from that statement to COMMIT
    ledger.record_redemption(redemption=redemption, product=row.batch.product, code_last4=row.last4,
                             actor=caller.identity, fresh=True, last=True)
    webhooks.redemption_changed(redemption, event_type="code.redeemed")
    return redemption


def _refuse_unless_redeemable(row: Code, batch: Batch, now) -> None:
    if row.state == Code.State.REDEEMED:
        live = Redemption.objects.filter(code=row, reversed_at__isnull=True).first()
        raise AlreadyRedeemed(
            "The code has already been redeemed.",
            redeemed_at=live.redeemed_at if live else row.redeemed_at,
        )
    if row.state == Code.State.VOID or batch.status == Batch.Status.VOID:
        raise CodeVoid(_("The code has been voided."))
    if is_expired(row, batch, now):
        raise CodeExpired(_("The code has expired."))


@transaction.atomic(savepoint=False)
def reverse_redemption(*, caller: Caller, redemption_id, reason: str) -> Redemption:
    """Undo a redemption within the merchant's window; the code is redeemable again.

    On PostgreSQL the whole reversal is one statement (vouchers/fastpath/reverse.py);
    when it writes nothing, the portable path below explains the refusal.
    Raises NotFound, AlreadyReversed, ReversalWindowClosed.
    """
    if fastpath.enabled():
        redemption = fast_reverse.reverse(
            redemption_id=redemption_id, storefront_id=caller.storefront_id, partner_id=caller.partner_id,
            reason=reason, actor=caller.identity, now=timezone.now(),
        )
        if redemption is not None:
            # HOOK (docs/transactions.md): as below, inside the transaction.
            # settlement: negate the redemption's entries (partners.services.ledger)
            ledger.record_reversal(redemption=redemption, actor=caller.identity)
            webhooks.redemption_changed(redemption, event_type="redemption.reversed")
            return redemption
    redemption = locks.lock_redemption(
        redemption_id=redemption_id, storefront_id=caller.storefront_id, partner_id=caller.partner_id
    )
    if redemption is None:
        raise NotFound(_("No such redemption."))
    if redemption.reversed_at is not None:
        raise AlreadyReversed(_("The redemption was already reversed."), reversed_at=redemption.reversed_at)
    now = timezone.now()
    window = timedelta(days=redemption.code.batch.product.merchant.reversal_window_days)
    if redemption.redeemed_at + window < now:
        raise ReversalWindowClosed(
            f"Redemptions can be reversed for {window.days} days; this one is older."
        )
    updated = Code.objects.filter(pk=redemption.code_id, state=Code.State.REDEEMED).update(
        state=Code.State.ISSUED, redeemed_at=None, state_changed_at=now
    )
    if updated != 1:
        raise RuntimeError(f"code {redemption.code_id} of a live redemption is not redeemed")
    redemption.reversed_at = now
    redemption.reversal_reason = reason
    redemption.save(update_fields=["reversed_at", "reversal_reason"])
    # HOOK (docs/transactions.md): after the effect, inside the transaction, with
    # redemption.pk, redemption.code_id, the product id, and `now` (the reversal time).
    stock.record_move(
        batch_id=redemption.code.batch_id, from_state=Code.State.REDEEMED, to_state=Code.State.ISSUED
    )
    record_event(
        action="redemption_reversed", actor=caller.identity, code=redemption.code,
        issuance_id=redemption.code.issuance_id, from_state=Code.State.REDEEMED,
        to_state=Code.State.ISSUED, details={"redemption": str(redemption.pk), "reason": reason[:200]},
    )
    # settlement: negate the redemption's entries (partners.services.ledger)
    ledger.record_reversal(redemption=redemption, actor=caller.identity)
    webhooks.redemption_changed(redemption, event_type="redemption.reversed")
    return redemption
