"""Redemption detail, and issuance and redemption lists: filters, cursor pages, tenancy."""

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from tests.vouchers.api.conftest import make_shop
from vouchers.models import Issuance, Redemption

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop():
    return make_shop(codes=20)


def issue(shop, **fields) -> dict:
    response = shop.client.issue(shop.product.sku, **fields)
    assert response.status_code == 201, response.json()
    return response.json()


def cursor_of(link: str | None) -> str | None:
    return parse_qs(urlsplit(link).query)["cursor"][0] if link else None


def test_redemption_detail_has_the_contract_fields_and_its_state(shop):
    issued = issue(shop, customer="cust-1", order_ref="o-1")
    redeemed = shop.client.redeem(issued["codes"][0]["code"], order_ref="pos-9", location="store 2").json()
    # when
    response = shop.client.get(f"/api/v1/redemptions/{redeemed['id']}/")
    # then
    assert response.status_code == 200
    body = response.json()
    assert body == {**redeemed, "order_ref": "pos-9", "location": "store 2", "customer": "cust-1",
                    "issuance_id": issued["id"], "status": "redeemed", "reversed_at": None}
    assert issued["codes"][0]["code"] not in response.content.decode()
    shop.client.reverse(redeemed["id"])
    reversed_body = shop.client.get(f"/api/v1/redemptions/{redeemed['id']}/").json()
    assert reversed_body["status"] == "reversed"
    assert reversed_body["reversed_at"] == Redemption.objects.get().reversed_at.isoformat().replace(
        "+00:00", "Z")


def test_another_storefronts_redemption_is_404_and_not_listed(shop):
    other = make_shop(codes=2)
    code = other.client.issue(other.product.sku).json()["codes"][0]["code"]
    theirs = other.client.redeem(code).json()
    response = shop.client.get(f"/api/v1/redemptions/{theirs['id']}/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert shop.client.get("/api/v1/redemptions/").json()["results"] == []
    assert shop.client.get("/api/v1/issuances/").json()["results"] == []
    assert shop.client.get("/api/v1/redemptions/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_issuances_are_filtered_by_order_ref_customer_status_and_time(shop):
    a = issue(shop, customer="alice", order_ref="o-1")
    b = issue(shop, customer="bob", order_ref="o-2", reserve=True)
    c = issue(shop, customer="alice", order_ref="o-3")
    Issuance.objects.filter(pk=a["id"]).update(created_at=timezone.now() - timedelta(days=2))

    def ids(query: str) -> list[str]:
        response = shop.client.get(f"/api/v1/issuances/?{query}")
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids("") == [c["id"], b["id"], a["id"]]
    assert ids("order_ref=o-2") == [b["id"]]
    assert ids("customer=alice") == [c["id"], a["id"]]
    assert ids("status=reserved") == [b["id"]]
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(f"created_after={since.replace('+', '%2B')}") == [c["id"], b["id"]]
    assert ids(f"created_before={since.replace('+', '%2B')}") == [a["id"]]
    row = shop.client.get("/api/v1/issuances/?order_ref=o-1").json()["results"][0]
    assert set(row) == {"id", "status", "sku", "quantity", "customer", "order_ref", "reserved_until",
                        "created_at"}


def test_issuances_are_paged_by_cursor_without_gaps_or_repeats(shop):
    made = [issue(shop, order_ref=f"o-{i}")["id"] for i in range(5)]
    seen, cursor = [], None
    while True:
        query = "page_size=2" + (f"&cursor={cursor}" if cursor else "")
        page = shop.client.get(f"/api/v1/issuances/?{query}").json()
        seen += [row["id"] for row in page["results"]]
        cursor = cursor_of(page["next"])
        if cursor is None:
            break
    assert seen == list(reversed(made))


def test_redemptions_are_filtered_by_order_ref_customer_status_and_time(shop):
    alice = issue(shop, customer="alice", quantity=2)["codes"]
    bob = issue(shop, customer="bob")["codes"]
    r1 = shop.client.redeem(alice[0]["code"], order_ref="pos-1").json()
    r2 = shop.client.redeem(alice[1]["code"], order_ref="pos-2").json()
    r3 = shop.client.redeem(bob[0]["code"], order_ref="pos-3").json()
    shop.client.reverse(r2["id"])
    Redemption.objects.filter(pk=r1["id"]).update(redeemed_at=timezone.now() - timedelta(days=2))

    def ids(query: str) -> list[str]:
        response = shop.client.get(f"/api/v1/redemptions/?{query}")
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids("") == [r3["id"], r2["id"], r1["id"]]
    assert ids("order_ref=pos-3") == [r3["id"]]
    assert ids("customer=alice") == [r2["id"], r1["id"]]
    assert ids("status=reversed") == [r2["id"]]
    assert ids("status=redeemed") == [r3["id"], r1["id"]]
    since = (timezone.now() - timedelta(days=1)).isoformat().replace("+", "%2B")
    assert ids(f"redeemed_after={since}") == [r3["id"], r2["id"]]
    assert ids(f"redeemed_before={since}") == [r1["id"]]


@pytest.mark.parametrize("query", [
    "status=sold", "created_after=yesterday", "page_size=0", "page_size=201",
    "created_after=2026-01-02T00:00:00Z&created_before=2026-01-01T00:00:00Z",
])
def test_a_malformed_filter_is_400_invalid_request(shop, query):
    response = shop.client.get(f"/api/v1/issuances/?{query}")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert response.json()["errors"]


@pytest.mark.parametrize("path", ["/api/v1/issuances/", "/api/v1/redemptions/"])
def test_an_invalid_cursor_is_400_invalid_request(shop, path):
    response = shop.client.get(f"{path}?cursor=%21%21not-base64")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert list(response.json()["errors"]) == ["cursor"]
