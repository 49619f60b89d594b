"""A scripted day at a shop, through the storefront API, and what the dashboard must then show."""

from __future__ import annotations

from dataclasses import dataclass

from fraud.models import RiskAssessment
from tests.vouchers.api.conftest import Shop, make_shop
from vouchers.models import Code, CodeEvent, Issuance


@dataclass
class Day:
    shop: Shop
    held: Issuance  # an order held for review


def scripted_day(*, merchant=None, codes: int = 40) -> Day:
    """7 single-code sales to regulars, 4 redemptions, 1 reversal, 1 order of 6 held for review."""
    shop = make_shop(codes=codes, merchant=merchant)
    issued = []
    for n in range(7):
        response = shop.client.issue(shop.product.sku, quantity=1, customer=f"regular-{n}")
        assert response.status_code == 201, response.content
        assert response.json()["status"] == "issued"
        issued.append(response.json()["codes"][0]["code"])
    redemptions = []
    for code in issued[:4]:
        response = shop.client.redeem(code)
        assert response.status_code == 201, response.content
        redemptions.append(response.json()["id"])
    assert shop.client.reverse(redemptions[0]).status_code == 200
    response = shop.client.issue(shop.product.sku, quantity=6, customer="brand-new")
    assert response.json()["status"] == "review"
    return Day(shop=shop, held=Issuance.objects.get(pk=response.json()["id"]))


def counted(merchant) -> dict[str, int]:
    """The day's figures counted from the rows themselves (the slow truth)."""
    events = CodeEvent.objects.filter(batch__product__merchant=merchant, code__isnull=False)
    return {
        "in_stock": Code.objects.filter(
            batch__product__merchant=merchant, state=Code.State.AVAILABLE, is_canary=False
        ).count(),
        "issued": events.filter(to_state="issued", from_state__in=["available", "reserved"]).count(),
        "redeemed": events.filter(to_state="redeemed").count(),
        "reversed": events.filter(from_state="redeemed", to_state="issued").count(),
        "review": Issuance.objects.filter(storefront__merchant=merchant, status="review").count(),
        "decisions": RiskAssessment.objects.filter(merchant=merchant).count(),
    }
