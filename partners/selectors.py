"""Reads of settlement used by more than one caller (the vouchers services among them)."""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from partners.models import AgreementVersion


def partner_honours_product(*, partner_id: int, product_id: int) -> bool:
    """Whether an agreement version of the partner covers the product now (one query).

    A partner key may check, redeem and reverse only codes of such products.
    """
    now = timezone.now()
    return (
        AgreementVersion.objects.filter(
            agreement__partner_id=partner_id, products=product_id, valid_from__lte=now
        )
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gt=now))
        .exists()
    )
