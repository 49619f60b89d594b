"""The only place rows are locked. Locks are taken in primary-key order."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q

from vouchers.models import Code, Issuance, Redemption

HELD_STATUSES = (Issuance.Status.RESERVED, Issuance.Status.REVIEW)


def lock_available_codes(*, batch_id: int, count: int, now: datetime) -> list[Code]:
    """Lock up to `count` sellable codes of a batch, skipping rows other claims hold.

    `list()` forces the query so the locks are really taken. Codes past their own
    expiry are not sold.
    """
    return list(
        Code.objects.filter(batch_id=batch_id, state=Code.State.AVAILABLE)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .order_by("pk")
        .select_for_update(skip_locked=True, of=("self",))[:count]
    )


def lock_issuance(*, issuance_id, storefront_id: int) -> Issuance | None:
    """Lock one issuance of a storefront; None if it is not theirs or does not exist."""
    return (
        Issuance.objects.select_for_update(of=("self",))
        .select_related("product")
        .filter(pk=issuance_id, storefront_id=storefront_id)
        .first()
    )


def lock_issuance_for_expiry(*, issuance_id) -> Issuance | None:
    """Lock a held issuance (reserved or in review) for the release task, skipping one a
    request or a reviewer is working on."""
    return (
        Issuance.objects.select_for_update(skip_locked=True)
        .filter(pk=issuance_id, status__in=HELD_STATUSES).first()
    )


def lock_issuance_for_review(*, issuance_id, merchant_id: int | None) -> Issuance | None:
    """Lock an issuance for a reviewer; scoped to a merchant unless merchant_id is None."""
    issuances = Issuance.objects.select_for_update(of=("self",)).select_related("product")
    if merchant_id is not None:
        issuances = issuances.filter(product__merchant_id=merchant_id)
    return issuances.filter(pk=issuance_id).first()


def lock_redemption(
    *, redemption_id, storefront_id: int | None, partner_id: int | None = None
) -> Redemption | None:
    """Lock a redemption made by this storefront, or by this partner (settlement)."""
    return (
        Redemption.objects.select_for_update(of=("self",))
        .select_related("code__batch__product__merchant")
        # None matches a NULL owner: a partner's redemption has no storefront, and back.
        .filter(Q(storefront_id=storefront_id, partner_id=partner_id), pk=redemption_id)
        .first()
    )
