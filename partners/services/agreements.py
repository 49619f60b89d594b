"""Agreements and their versions: versioned terms, never edited once used."""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from config import versions
from partners.exceptions import AgreementVersionInUse, AgreementVersionOverlap, InvalidAgreementTerms
from partners.models import Agreement, AgreementVersion, LedgerEntry


class CoveredProduct(Protocol):
    """What the terms are checked against of a product a version covers (a `vouchers` Product).

    The service reads these attributes of the products its callers pass and sets the
    version's products by primary key, so it needs no import of `vouchers`' models.
    """

    pk: Any
    sku: str
    merchant_id: int
    currency: str


def validate_timezone(name: str) -> None:
    """Raises InvalidAgreementTerms unless `name` is an IANA time zone."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidAgreementTerms(_("%(name)r is not an IANA time zone.") % {"name": name}) from None


def version_is_used(version: AgreementVersion) -> bool:
    return version.pk is not None and LedgerEntry.objects.filter(agreement_version_id=version.pk).exists()


def _check_terms(
    agreement: Agreement,
    *,
    products: Sequence[CoveredProduct],
    unit_amount_minor,
    rate_bps,
    valid_from,
    valid_until,
) -> None:
    if (unit_amount_minor is None) == (rate_bps is None):
        raise InvalidAgreementTerms(_("Give either a unit amount or a rate in basis points, not both."))
    if valid_until is not None and valid_until <= valid_from:
        raise InvalidAgreementTerms(_("valid_until must be after valid_from."))
    foreign = [p.sku for p in products if p.merchant_id != agreement.merchant_id]
    if foreign:
        skus = ", ".join(foreign)
        raise InvalidAgreementTerms(_("Products of another merchant: %(skus)s.") % {"skus": skus})
    if rate_bps is not None:
        other = [p.sku for p in products if p.currency != agreement.currency]
        if other:
            raise InvalidAgreementTerms(
                _("A rate prices face values in %(currency)s; these are not: %(skus)s.")
                % {"currency": agreement.currency, "skus": ", ".join(other)}
            )


def _overlapping(agreement_id: int, valid_from: datetime, valid_until: datetime | None, exclude_pk=None):
    others = AgreementVersion.objects.filter(agreement_id=agreement_id)
    if exclude_pk is not None:
        others = others.exclude(pk=exclude_pk)
    others = others.filter(Q(valid_until__isnull=True) | Q(valid_until__gt=valid_from))
    if valid_until is not None:
        others = others.filter(valid_from__lt=valid_until)
    return others


def check_version(
    agreement: Agreement,
    *,
    products,
    unit_amount_minor: int | None,
    rate_bps: int | None,
    valid_from: datetime,
    valid_until: datetime | None,
    version: AgreementVersion | None = None,
) -> None:
    """Every rule a new or edited version must meet (the admin form shows them as errors).

    Raises AgreementVersionInUse (`version` priced events), InvalidAgreementTerms,
    AgreementVersionOverlap.
    """
    if version is not None and version_is_used(version):
        raise AgreementVersionInUse("This version has priced events; add a new version from a date instead.")
    _check_terms(
        agreement,
        products=products,
        unit_amount_minor=unit_amount_minor,
        rate_bps=rate_bps,
        valid_from=valid_from,
        valid_until=valid_until,
    )
    exclude = version.pk if version is not None else None
    if _overlapping(agreement.pk, valid_from, valid_until, exclude_pk=exclude).exists():
        raise AgreementVersionOverlap("This version's validity overlaps another version of the agreement.")


def _lock_agreement(agreement_id: int) -> Agreement:
    return Agreement.objects.select_for_update().get(pk=agreement_id)


@transaction.atomic
def add_version(
    *,
    agreement: Agreement,
    products: Sequence[CoveredProduct],
    basis: str,
    direction: str,
    valid_from: datetime,
    valid_until: datetime | None = None,
    unit_amount_minor: int | None = None,
    rate_bps: int | None = None,
) -> AgreementVersion:
    """A new version of the agreement's terms; refuses one overlapping another version.

    Raises InvalidAgreementTerms, AgreementVersionOverlap.
    """
    agreement = _lock_agreement(agreement.pk)
    check_version(
        agreement,
        products=products,
        unit_amount_minor=unit_amount_minor,
        rate_bps=rate_bps,
        valid_from=valid_from,
        valid_until=valid_until,
    )
    number = (agreement.versions.order_by("-number").values_list("number", flat=True).first() or 0) + 1
    version = AgreementVersion.objects.create(
        agreement=agreement,
        number=number,
        basis=basis,
        direction=direction,
        valid_from=valid_from,
        valid_until=valid_until,
        unit_amount_minor=unit_amount_minor,
        rate_bps=rate_bps,
    )
    version.products.set([product.pk for product in products])
    versions.bump(agreement.merchant_id, versions.AGREEMENTS)  # the ledger's cached copies
    return version


@transaction.atomic
def change_version(
    *, version: AgreementVersion, products: Sequence[CoveredProduct] | None = None, **terms
) -> AgreementVersion:
    """Edit a version that has not priced anything yet.

    Raises AgreementVersionInUse, InvalidAgreementTerms, AgreementVersionOverlap.
    """
    agreement = _lock_agreement(version.agreement_id)
    for field, value in terms.items():
        setattr(version, field, value)
    products = list(version.products.all()) if products is None else products
    check_version(
        agreement,
        products=products,
        unit_amount_minor=version.unit_amount_minor,
        rate_bps=version.rate_bps,
        valid_from=version.valid_from,
        valid_until=version.valid_until,
        version=version,
    )
    version.save()
    version.products.set([product.pk for product in products])
    versions.bump(agreement.merchant_id, versions.AGREEMENTS)  # the ledger's cached copies
    return version


@transaction.atomic
def supersede_version(*, version: AgreementVersion, from_date: datetime, **new_terms) -> AgreementVersion:
    """End `version` at `from_date` and start a new version with `new_terms` from then on.

    The only change a used version accepts is its end, and only where it has priced
    nothing at or after that end. Unnamed terms are copied from the old version.
    Raises AgreementVersionInUse, InvalidAgreementTerms, AgreementVersionOverlap.
    """
    _lock_agreement(version.agreement_id)
    version = AgreementVersion.objects.get(pk=version.pk)
    if from_date <= version.valid_from or (
        version.valid_until is not None and from_date >= version.valid_until
    ):
        raise InvalidAgreementTerms(_("The new version must start inside the old version's validity."))
    if LedgerEntry.objects.filter(agreement_version_id=version.pk, occurred_at__gte=from_date).exists():
        raise AgreementVersionInUse(_("The old version already priced events after that date."))
    old_until = version.valid_until
    AgreementVersion.objects.filter(pk=version.pk).update(valid_until=from_date)
    terms: dict[str, Any] = {
        "products": new_terms.pop("products", None) or list(version.products.all()),
        "basis": version.basis,
        "direction": version.direction,
        "valid_until": old_until,
        "unit_amount_minor": version.unit_amount_minor,
        "rate_bps": version.rate_bps,
    }
    if "unit_amount_minor" in new_terms or "rate_bps" in new_terms:
        terms["unit_amount_minor"] = terms["rate_bps"] = None
    terms.update(new_terms)
    return add_version(agreement=version.agreement, valid_from=from_date, **terms)
