"""One source event prices at most once, also when recorded concurrently (PostgreSQL, threads)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from partners.models import LedgerEntry, LedgerHead
from partners.services import ledger
from tests.concurrency import run_concurrently
from tests.partners.conftest import make_agreement
from tests.vouchers.api.conftest import make_shop
from vouchers.models import Redemption

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_one_redemption_recorded_by_twenty_threads_prices_once_per_partner():
    # given a redemption covered by two partners' agreements
    shop = make_shop(codes=1)
    merchant = shop.storefront.merchant
    first = make_agreement(merchant=merchant, products=[shop.product], unit_amount_minor=100)
    second = make_agreement(merchant=merchant, products=[shop.product], unit_amount_minor=200)
    code = shop.client.issue(shop.product.sku).json()["codes"][0]["code"]
    redemption = Redemption.objects.get(pk=shop.client.redeem(code).json()["id"])
    assert LedgerEntry.objects.count() == 2

    # when twenty threads record it again at once
    def record(_i):
        try:
            with transaction.atomic():
                return len(
                    ledger.record_redemption(redemption=redemption, product=shop.product, code_last4="0000")
                )
        finally:
            connection.close()

    written = run_concurrently(record, tasks=20, workers=20)
    # then nothing more is written and each chain still holds
    assert written == [0] * 20
    assert sorted(LedgerEntry.objects.values_list("amount_minor", flat=True)) == [100, 200]
    for agreement in (first, second):
        assert LedgerHead.objects.get(partner_id=agreement.partner_id).seq == 1
        assert ledger.verify_chain(partner_id=agreement.partner_id) is None


def test_concurrent_redemptions_of_different_codes_keep_one_gapless_chain():
    # given 30 issued codes of a covered product
    shop = make_shop(codes=30)
    agreement = make_agreement(merchant=shop.storefront.merchant, products=[shop.product])
    codes = [
        c["code"]
        for i in range(6)
        for c in shop.client.issue(shop.product.sku, quantity=5, customer=f"c{i}").json()["codes"]
    ]
    from tests.vouchers.api.conftest import StorefrontClient

    # when they are redeemed by 10 threads at once
    def redeem(i):
        try:
            return (
                StorefrontClient(shop.client.key)
                .redeem(codes[i], customer=f"r{i}", ip=f"10.0.0.{i + 1}")
                .status_code
            )
        finally:
            connection.close()

    statuses = run_concurrently(redeem, tasks=30, workers=10)
    # then 30 entries with seq 1..30 in one valid chain
    assert statuses == [201] * 30
    seqs = list(
        LedgerEntry.objects.filter(partner=agreement.partner).order_by("seq").values_list("seq", flat=True)
    )
    assert seqs == list(range(1, 31))
    assert ledger.verify_chain(partner_id=agreement.partner_id) is None
