"""The dashboard's partner figures: the open period's ledger entries per partner and currency."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest import mock

import pytest
from django.db.models import Count, Sum
from django.urls import reverse

from partners.models import LedgerEntry
from partners.services import statements
from tests.factories import PartnerFactory, StaffFactory
from tests.partners.conftest import make_agreement
from tests.vouchers.api.conftest import make_shop
from vouchers.dashboard.partners import partner_balances

INDEX = reverse("admin:index")
DEC_1 = datetime(2025, 12, 1, tzinfo=UTC)
JAN_10 = datetime(2026, 1, 10, 12, tzinfo=UTC)
FEB_1 = datetime(2026, 2, 1, 0, 5, tzinfo=UTC)
FEB_10 = datetime(2026, 2, 10, 12, tzinfo=UTC)


def at(moment: datetime):
    return mock.patch("django.utils.timezone.now", return_value=moment)


def sell_and_redeem(shop, quantity: int) -> list[str]:
    codes = [c["code"] for c in shop.client.issue(shop.product.sku, quantity=quantity).json()["codes"]]
    return [shop.client.redeem(code).json()["id"] for code in codes]


@pytest.fixture
def settled_shop(db):
    """Merchant A: 1.25 USD owed to Alpha per redemption, 300 JPY owed by Beta per code sold.

    January (2 sold and redeemed) is closed on a statement; February so far: 3 sold and
    redeemed, one redemption reversed.
    """
    shop = make_shop(codes=8)
    merchant = shop.storefront.merchant
    alpha, beta = PartnerFactory(name="Alpha"), PartnerFactory(name="Beta")
    shop.usd = make_agreement(merchant=merchant, products=[shop.product], partner=alpha,
                              unit_amount_minor=125, valid_from=DEC_1)
    shop.jpy = make_agreement(merchant=merchant, products=[shop.product], partner=beta,
                              currency="JPY", basis="issued", direction="partner_pays_merchant",
                              unit_amount_minor=300, valid_from=DEC_1)
    with at(JAN_10):
        sell_and_redeem(shop, 2)
    with at(FEB_1):
        assert len(statements.close_statements(as_of=FEB_1)) == 2
    with at(FEB_10):
        redemptions = sell_and_redeem(shop, 3)
        assert shop.client.reverse(redemptions[0]).status_code == 200
    return shop


def open_ledger(agreement) -> tuple[int, int]:
    totals = LedgerEntry.objects.filter(agreement=agreement, line__isnull=True).aggregate(
        total=Sum("amount_minor"), n=Count("id"))
    return totals["total"], totals["n"]


def test_the_open_period_figures_equal_the_ledgers_entries_on_no_statement(settled_shop):
    # when
    balances = partner_balances(merchant_id=settled_shop.storefront.merchant_id, now=FEB_10)
    # then one row per partner and currency, in the ledger's sign
    assert [(b.partner, b.currency, b.amount_minor, b.entries) for b in balances] == [
        ("Alpha", "USD", *open_ledger(settled_shop.usd)),
        ("Beta", "JPY", *open_ledger(settled_shop.jpy)),
    ]
    alpha, beta = balances
    assert (alpha.amount_minor, alpha.magnitude) == (250, "2.50")  # 3 x 1.25 - 1.25 reversed
    assert (beta.amount_minor, beta.magnitude) == (-900, "900")  # 3 x 300 owed by Beta, no minor digits
    assert (alpha.since, alpha.until) == (FEB_1.date(), datetime(2026, 2, 28).date())
    # January's entries are on the statement, not in the open period
    assert LedgerEntry.objects.filter(agreement=settled_shop.usd, line__isnull=False).count() == 2


def test_a_period_never_closed_starts_at_the_period_of_the_first_entry(db):
    shop = make_shop(codes=3)
    make_agreement(merchant=shop.storefront.merchant, products=[shop.product], period="weekly",
                   tz="Asia/Shanghai", valid_from=DEC_1)
    with at(JAN_10):  # a Saturday
        sell_and_redeem(shop, 1)
    # when
    (balance,) = partner_balances(merchant_id=shop.storefront.merchant_id, now=FEB_10)
    # then the open period runs from Monday 5 January (Shanghai) to the end of this week
    assert (balance.since.isoformat(), balance.until.isoformat()) == ("2026-01-05", "2026-02-15")
    assert (balance.amount_minor, balance.entries) == (125, 1)


def test_the_dashboard_shows_each_partners_balance_on_its_side(client, settled_shop):
    client.force_login(StaffFactory(merchant=settled_shop.storefront.merchant).user)
    # when
    with at(FEB_10):
        response = client.get(INDEX)
    # then
    page = response.content.decode()
    assert 'data-testid="partners"' in page
    rows = page.split('data-testid="partner-row"')[1:]
    assert "Alpha" in rows[0] and 'data-testid="owed-to-partner">2.50 USD<' in rows[0]
    assert "Beta" in rows[1] and 'data-testid="owed-by-partner">900 JPY<' in rows[1]
    assert 'data-testid="owed-to-partner"></td>' in rows[1]


def test_merchant_b_sees_none_of_merchant_as_partner_figures(client, settled_shop):
    other = make_shop(codes=2)
    alpha = settled_shop.usd.partner
    agreement = make_agreement(merchant=other.storefront.merchant, products=[other.product], partner=alpha,
                               unit_amount_minor=999, valid_from=DEC_1)
    with at(FEB_10):
        sell_and_redeem(other, 1)
    client.force_login(StaffFactory(merchant=other.storefront.merchant).user)
    # when
    with at(FEB_10):
        page = client.get(INDEX).content.decode()
    balances = partner_balances(merchant_id=other.storefront.merchant_id, now=FEB_10)
    # then B sees its own agreement with Alpha only, never A's amounts or A's other partner
    assert [(b.partner, b.currency, b.amount_minor, b.entries) for b in balances] == [
        ("Alpha", "USD", *open_ledger(agreement))
    ]
    assert "9.99 USD" in page
    assert "2.50 USD" not in page and "Beta" not in page and "900 JPY" not in page


def test_a_merchant_without_agreements_has_no_partner_section(client, db):
    shop = make_shop(codes=1)
    client.force_login(StaffFactory(merchant=shop.storefront.merchant).user)
    # when
    page = client.get(INDEX).content.decode()
    # then
    assert partner_balances(merchant_id=shop.storefront.merchant_id) is None
    assert 'data-testid="in-stock"' in page and 'data-testid="partners"' not in page
