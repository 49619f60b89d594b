"""The agreements covering a product are held in process; a change applies on the next request."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from partners.models import AgreementVersion, LedgerEntry
from partners.services import ledger
from partners.services.agreements import supersede_version
from tests.factories import ProductFactory, StaffFactory, grant_app_permissions
from tests.partners.conftest import make_agreement
from tests.vouchers.api.conftest import make_shop

# Ledger entries are append-only (a flush between tests is refused), so each test runs
# in a transaction; the bumps, run on commit, are run where the change commits.
pytestmark = pytest.mark.django_db


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


def shop_with_codes(count: int):
    shop = make_shop(codes=count)
    codes = [c["code"] for c in shop.client.issue(shop.product.sku, quantity=count).json()["codes"]]
    return shop, codes


def cached(shop) -> tuple:
    """The covering versions held in process for the shop's product (redemptions)."""
    entry = ledger._COVERING.peek(shop.storefront.merchant_id, (shop.product.pk, "redeemed"))
    assert entry is not None, "no copy held in process"
    return entry[1]


def test_a_new_agreement_prices_the_next_redemption_although_none_was_cached(committed):
    # given an uncovered product whose (empty) covering is held in process
    shop, codes = shop_with_codes(4)
    assert shop.client.redeem(codes[0]).status_code == 201
    assert shop.client.redeem(codes[1]).status_code == 201
    assert cached(shop) == ()
    assert not LedgerEntry.objects.exists()
    # when a partner agreement starts covering it (add_version bumps the version)
    with committed(execute=True):
        agreement = make_agreement(merchant=shop.storefront.merchant, products=[shop.product])
    # then the very next redemption is priced
    redemption = shop.client.redeem(codes[2]).json()["id"]
    (entry,) = LedgerEntry.objects.all()
    assert (entry.agreement_id, entry.source_id, entry.amount_minor) == (agreement.pk, redemption, 125)


def test_a_superseded_price_applies_on_the_next_redemption(committed):
    shop, codes = shop_with_codes(4)
    agreement = make_agreement(merchant=shop.storefront.merchant, products=[shop.product])
    shop.client.redeem(codes[0])
    shop.client.redeem(codes[1])
    assert [v.unit_amount_minor for v in cached(shop)] == [125]
    with committed(execute=True):
        supersede_version(version=agreement.versions.get(), from_date=timezone.now(), unit_amount_minor=300)
    redemption = shop.client.redeem(codes[2]).json()["id"]
    assert LedgerEntry.objects.get(source_id=redemption).amount_minor == 300


def test_an_admin_edit_of_an_unused_version_applies_on_the_next_redemption(committed):
    # given a version covering another product only, and redemptions of ours cached as uncovered
    shop, codes = shop_with_codes(4)
    merchant = shop.storefront.merchant
    agreement = make_agreement(merchant=merchant, products=[ProductFactory(merchant=merchant)])
    shop.client.redeem(codes[0])
    shop.client.redeem(codes[1])
    assert cached(shop) == ()
    # when staff add our product to that version in the admin
    version = agreement.versions.get()
    staff = StaffFactory(merchant=merchant)
    grant_app_permissions(staff.user, "partners", "vouchers")
    client = Client()
    client.force_login(staff.user)
    with committed(execute=True):
        response = client.post(f"/admin/partners/agreementversion/{version.pk}/change/", {
            "agreement": agreement.pk, "products": [p.pk for p in version.products.all()] + [shop.product.pk],
            "basis": version.basis, "direction": version.direction, "unit_amount_minor": 250, "rate_bps": "",
            "valid_from_0": version.valid_from.strftime("%Y-%m-%d"), "valid_from_1": "00:00:00",
            "valid_until_0": "", "valid_until_1": "",
        })
    assert response.status_code == 302, response.content[:2000]
    assert AgreementVersion.objects.get(pk=version.pk).products.filter(pk=shop.product.pk).exists()
    # then the next redemption of our product is priced at the new terms
    redemption = shop.client.redeem(codes[2]).json()["id"]
    assert LedgerEntry.objects.get(source_id=redemption).amount_minor == 250
