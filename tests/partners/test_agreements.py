"""Agreement versions: never overlapping, never edited once they priced an event."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from partners.exceptions import AgreementVersionInUse, AgreementVersionOverlap, InvalidAgreementTerms
from partners.models import AgreementVersion
from partners.services.agreements import add_version, change_version, supersede_version
from tests.factories import ProductFactory
from tests.partners.conftest import make_agreement

JAN, FEB, MAR = (datetime(2026, m, 1, tzinfo=UTC) for m in (1, 2, 3))


@pytest.fixture
def agreement(covered_shop):
    return covered_shop.agreement


def test_an_overlapping_version_is_refused_and_nothing_is_added(agreement):
    # the fixture's version is open-ended from 2020
    with pytest.raises(AgreementVersionOverlap):
        add_version(
            agreement=agreement,
            products=list(agreement.versions.get().products.all()),
            basis="redeemed",
            direction="merchant_pays_partner",
            valid_from=FEB,
            unit_amount_minor=1,
        )
    assert agreement.versions.count() == 1


def test_a_used_version_cannot_be_edited_but_can_be_superseded(covered_shop):
    shop = covered_shop
    version = shop.agreement.versions.get()
    code = shop.client.issue(shop.product.sku).json()["codes"][0]["code"]
    shop.client.redeem(code)
    with pytest.raises(AgreementVersionInUse):
        change_version(version=version, unit_amount_minor=999)
    assert AgreementVersion.objects.get(pk=version.pk).unit_amount_minor == 125
    # a price change from a future date is a new version
    later = datetime(2099, 1, 1, tzinfo=UTC)
    new = supersede_version(version=version, from_date=later, unit_amount_minor=150)
    old = AgreementVersion.objects.get(pk=version.pk)
    assert (old.valid_until, new.valid_from, new.valid_until, new.unit_amount_minor, new.number) == (
        later,
        later,
        None,
        150,
        2,
    )
    with pytest.raises(AgreementVersionInUse):  # it already priced an event after that date
        supersede_version(version=old, from_date=datetime(2021, 1, 1, tzinfo=UTC))
    assert AgreementVersion.objects.get(pk=version.pk).valid_until == later


def test_an_unused_version_can_be_edited(db):
    product = ProductFactory()
    agreement = make_agreement(merchant=product.merchant, products=[product], valid_from=JAN, valid_until=FEB)
    version = agreement.versions.get()
    change_version(version=version, unit_amount_minor=200, valid_until=MAR)
    assert AgreementVersion.objects.get(pk=version.pk).unit_amount_minor == 200


def test_terms_are_checked(db):
    product = ProductFactory(currency="JPY", face_value=1000)
    other = ProductFactory()
    with pytest.raises(InvalidAgreementTerms):  # a rate needs products in the agreement's currency
        make_agreement(merchant=product.merchant, products=[product], currency="USD", rate_bps=100)
    with pytest.raises(InvalidAgreementTerms):  # another merchant's product
        make_agreement(merchant=product.merchant, products=[other])
    with pytest.raises(InvalidAgreementTerms):  # both prices
        make_agreement(
            merchant=product.merchant, products=[product], currency="JPY", rate_bps=1, unit_amount_minor=1
        )
    assert AgreementVersion.objects.count() == 0
