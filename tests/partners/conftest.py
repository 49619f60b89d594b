"""Fixtures for settlement: agreements over a shop's product, and a few helpers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from partners.models import Agreement
from partners.services.agreements import add_version
from tests.factories import PartnerFactory
from tests.vouchers.api.conftest import make_shop

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def make_agreement(
    *,
    merchant,
    products,
    partner=None,
    currency="USD",
    period="monthly",
    tz="UTC",
    basis="redeemed",
    unit_amount_minor=None,
    rate_bps=None,
    direction="merchant_pays_partner",
    valid_from=EPOCH,
    valid_until=None,
    dispute_window_days=14,
) -> Agreement:
    partner = partner or PartnerFactory()
    agreement = Agreement.objects.create(
        merchant=merchant,
        partner=partner,
        currency=currency,
        period=period,
        timezone=tz,
        dispute_window_days=dispute_window_days,
    )
    if unit_amount_minor is None and rate_bps is None:
        unit_amount_minor = 125
    add_version(
        agreement=agreement,
        products=list(products),
        basis=basis,
        direction=direction,
        valid_from=valid_from,
        valid_until=valid_until,
        unit_amount_minor=unit_amount_minor,
        rate_bps=rate_bps,
    )
    return agreement


@pytest.fixture
def covered_shop(db):
    """A shop whose product a partner honours at 1.25 USD per redemption."""
    shop = make_shop(codes=10)
    agreement = make_agreement(merchant=shop.storefront.merchant, products=[shop.product])
    shop.agreement = agreement
    return shop
