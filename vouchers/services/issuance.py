"""Issuing (selling) codes to a storefront's customer: N codes or none."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import BooleanField, F
from django.db.models.expressions import RawSQL
from django.utils import timezone

from config.callers import Caller, CustomerContext
from partners.services import ledger
from vouchers import fastpath, locks, selectors
from vouchers.exceptions import OutOfStock, UnknownProduct
from vouchers.fastpath import issue as fast_issue
from vouchers.models import Batch, Code, CodeEvent, Issuance, Product, Storefront
from vouchers.services import risk, stock
from vouchers.webhooks.services import outbox as webhooks

_LISTED = Storefront.products.through._meta.db_table

# The product and whether this storefront may sell it, in one query: a storefront with
# no product list sells all its merchant's products, else only those listed
# (selectors.storefront_may_sell). Written as SQL: the ORM-built query with two EXISTS
# costs more CPU to compile than the query takes.
_SELLABLE_PRODUCT_SQL = f"""
SELECT p.* FROM {Product._meta.db_table} AS p
 WHERE p.merchant_id = %s AND p.sku = %s AND p.is_active
   AND (NOT EXISTS (SELECT 1 FROM {_LISTED} AS l WHERE l.storefront_id = %s)
        OR EXISTS (SELECT 1 FROM {_LISTED} AS l WHERE l.storefront_id = %s AND l.product_id = p.id))
"""  # noqa: S608 (table names from the models; every value is a parameter)


def sellable_product(*, caller: Caller, sku: str) -> Product:
    """The caller's merchant's active product that this storefront may sell. Raises UnknownProduct."""
    params = [caller.own_merchant_id, sku, caller.own_storefront_id, caller.own_storefront_id]
    product = next(iter(Product.objects.raw(_SELLABLE_PRODUCT_SQL, params)), None)
    if product is None:
        raise UnknownProduct(f"No product with SKU {sku!r} is sold by this storefront.")
    return product


def issue_codes(
    *,
    caller: Caller,
    sku: str,
    quantity: int,
    customer: str = "",
    order_ref: str = "",
    reserve: bool = False,
    context: CustomerContext | None = None,
) -> Issuance:
    """Claim `quantity` codes for one issuance, all of them or none.

    Fraud checks decide first: a deny is refused (and the decision kept), a review
    holds the codes like a reservation until a reviewer decides. Codes are locked with
    SKIP LOCKED in primary-key order, batch by batch, first expiring batch first (less
    expiry waste). No count is read before taking: a short claim raises and the
    transaction rolls back, releasing every lock.
    Raises UnknownProduct, FraudDenied, RiskCheckUnavailable, OutOfStock.
    """
    product = sellable_product(caller=caller, sku=sku)
    context = context or CustomerContext(customer=customer)
    decision = risk.assess_or_refuse(
        risk.context_for(caller=caller, customer=context, action="issue", product_id=product.pk,
                         quantity=quantity),
        defer_allow=True,  # an allow is written with the issuance, or not at all
    )
    now = timezone.now()
    if risk.needs_review(decision):
        status = Issuance.Status.REVIEW
        hold_until = now + timedelta(seconds=settings.VOUCHER_REVIEW_TTL_SECONDS)
    elif reserve:
        status = Issuance.Status.RESERVED
        hold_until = now + timedelta(seconds=caller.reservation_ttl_seconds)
    else:
        status, hold_until = Issuance.Status.ISSUED, None
    action = {"issued": "issued", "reserved": "reserved", "review": "held_for_review"}[status]
    context_row = {"ip": context.ip, "device_id": context.device_id, "email": context.email}
    if fastpath.enabled():
        return _issue_fast(
            caller=caller, product=product, quantity=quantity, customer=customer,
            order_ref=order_ref, status=status, hold_until=hold_until, context=context_row,
            decision=decision, action=action, now=now,
        )
    with transaction.atomic(savepoint=False):
        issuance = Issuance.objects.create(
            storefront_id=caller.own_storefront_id, product=product, quantity=quantity,
            customer=customer, order_ref=order_ref, status=status, reserved_until=hold_until,
            context=context_row,
        )
        claimed = claim_codes(product=product, quantity=quantity, now=now)
        if len(claimed) < quantity:
            available = max(selectors.available_by_product([product.pk], now=now)[product.pk], 0)
            raise _out_of_stock(product, quantity, available)
        held = status != Issuance.Status.ISSUED
        move_codes(
            codes=claimed, issuance=issuance, from_state=Code.State.AVAILABLE,
            to_state=Code.State.RESERVED if held else Code.State.ISSUED, actor=caller.identity,
            now=now, action=action,
        )
        if not held:  # settlement: price the issued codes (partners.services.ledger)
            ledger.record_issuance(issuance=issuance, codes=claimed, product=product, at=now,
                                   actor=caller.identity, fresh=True)
        risk.attach(decision, issuance_id=issuance.pk)
        # HOOK (docs/transactions.md): after the effect, inside the transaction, with
        # issuance.pk, product.pk, the claimed code ids, issuance.status and `now`
        # (a covered product's ledger entry belongs here when the status is issued).
        webhooks.issuance_changed(issuance, codes=claimed)
    return issuance


def _issue_fast(
    *, caller: Caller, product: Product, quantity: int, customer: str, order_ref: str, status: str,
    hold_until, context: dict, decision, action: str, now,
) -> Issuance:
    """PostgreSQL: the whole issuance in one statement (vouchers/fastpath/issue.py).

    A short claim wrote nothing and brought the stock count back in the same round
    trip. If its decision row went too (an allow), nothing of the request is left, so
    the refusal keeps the transaction (rollback=False: the idempotency record is stored
    in it, no second transaction); otherwise the refusal rolls everything back.
    """
    with transaction.atomic(savepoint=False):
        result = fast_issue.issue(
            product=product, storefront_id=caller.own_storefront_id, quantity=quantity, customer=customer,
            order_ref=order_ref, status=status, reserved_until=hold_until, context=context,
            assessment=decision, actor=caller.identity, action=action, now=now,
        )
        if isinstance(result, fast_issue.Shortfall) and not result.wrote_nothing:
            raise _out_of_stock(product, quantity, result.available)
        if not isinstance(result, fast_issue.Shortfall):
            # HOOK (docs/transactions.md): after the effect, inside the transaction. A
            # recorder that must live in the statement itself joins ISSUE_SQL as one more CTE.
            if result.status == Issuance.Status.ISSUED:  # settlement (partners.services.ledger)
                ledger.record_issuance(issuance=result, codes=result.claimed_codes, product=product,
                                       at=now, actor=caller.identity, fresh=True)
            webhooks.issuance_changed(result, codes=result.claimed_codes)
    if isinstance(result, fast_issue.Shortfall):
        refusal = _out_of_stock(product, quantity, result.available)
        refusal.rollback = False  # raised after the block closed: nothing to keep, nothing to undo
        raise refusal
    return result


def _out_of_stock(product: Product, quantity: int, available: int) -> OutOfStock:
    return OutOfStock(f"{quantity} of {product.sku} requested, {available} in stock.", available=available)


# Whether a batch still holds a claimable code (the same test as
# locks.lock_available_codes): one probe of the partial index on available codes.
# Written as SQL because the ORM-built Exists(OuterRef) costs about 0.6 ms of CPU per
# issuance to compile, as much as the query it saves. The state is a constant written
# in, so the planner matches the partial index whatever the parameter binding.
_HAS_CLAIMABLE_CODE = (  # names and the state from the models; the time is a parameter
    f"EXISTS (SELECT 1 FROM {Code._meta.db_table} c "  # noqa: S608
    f"WHERE c.batch_id = {Batch._meta.db_table}.id AND c.state = '{Code.State.AVAILABLE.value}' "
    "AND (c.expires_at IS NULL OR c.expires_at > %s))"
)


def claim_codes(*, product: Product, quantity: int, now) -> list[Code]:
    """Lock up to `quantity` available codes of the product's sellable batches.

    Only batches that still hold a claimable code are walked (the EXISTS probe runs
    inside the batch query), so batches sold out long ago cost no round trip: without
    it, every issuance ran one empty locking query per exhausted batch ahead of the
    first one with stock.
    """
    has_claimable = RawSQL(_HAS_CLAIMABLE_CODE, [now], output_field=BooleanField())  # noqa: S611
    batch_ids = (
        Batch.objects.filter(product=product).filter(selectors.sellable_batches_q(now))
        .filter(has_claimable)
        .order_by(F("valid_until").asc(nulls_last=True), "pk").values_list("pk", flat=True)
    )
    claimed: list[Code] = []
    for batch_id in batch_ids:
        claimed += locks.lock_available_codes(batch_id=batch_id, count=quantity - len(claimed), now=now)
        if len(claimed) == quantity:
            break
    return claimed


def move_codes(
    *, codes: list[Code], issuance: Issuance, from_state: str, to_state: str, actor: str,
    now, action: str, details: dict | None = None,
) -> None:
    """Move locked codes between states with one conditional UPDATE, stock counters and events.

    The UPDATE names the state it expects; a row count short of len(codes) means a
    row changed under us, which the locks make impossible, so it is a loud error.
    """
    ids = [code.pk for code in codes]
    holder = None if to_state == Code.State.AVAILABLE else issuance
    updated = Code.objects.filter(pk__in=ids, state=from_state).update(
        state=to_state, issuance=holder, state_changed_at=now
    )
    if updated != len(ids):
        raise RuntimeError(f"expected to move {len(ids)} codes {from_state}->{to_state}, moved {updated}")
    stock.record_moves(Counter((code.batch_id, from_state, to_state) for code in codes))
    events = [
        CodeEvent(
            action=action, actor=actor, batch_id=code.batch_id, code_id=code.pk,
            issuance_id=issuance.pk, from_state=from_state, to_state=to_state, details=details or {},
        )
        for code in codes
    ]
    events.append(
        CodeEvent(
            action=f"issuance_{action}", actor=actor, issuance_id=issuance.pk,
            to_state=issuance.status, details={"quantity": len(codes), **(details or {})},
        )
    )
    CodeEvent.objects.bulk_create(events)
    for code in codes:
        code.state, code.issuance_id, code.state_changed_at = to_state, holder.pk if holder else None, now
