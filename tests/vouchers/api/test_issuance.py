import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.snapshots import world
from tests.vouchers.api.conftest import make_shop
from vouchers.models import Batch, Code, CodeEvent, Issuance
from vouchers.selectors import counted_stock_by_state, stock_by_state
from vouchers.services.generation import generate_batch

pytestmark = pytest.mark.django_db


def test_issuance_returns_n_codes_in_clear_and_records_every_move(shop):
    # when three codes are issued
    response = shop.client.issue(shop.product.sku, quantity=3, customer="cust-1", order_ref="o-1")
    # then
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "issued"
    assert body["sku"] == shop.product.sku
    assert (body["quantity"], body["customer"], body["order_ref"]) == (3, "cust-1", "o-1")
    assert body["reserved_until"] is None
    assert [c["code"] for c in body["codes"]] == shop.plaintexts()[:3]
    issuance = Issuance.objects.get(pk=body["id"])
    assert list(issuance.codes.values_list("state", flat=True)) == ["issued"] * 3
    assert CodeEvent.objects.filter(issuance=issuance, action="issued").count() == 3
    assert CodeEvent.objects.filter(issuance=issuance, action="issuance_issued").count() == 1
    batch = shop.product.batches.get()
    assert stock_by_state([batch.pk])[batch.pk] == counted_stock_by_state(batch.pk)
    assert counted_stock_by_state(batch.pk)["issued"] == 3


def test_request_for_more_than_stock_gets_none_and_changes_nothing(shop):
    # given 10 codes in stock
    before = world()
    # when 11 are requested
    response = shop.client.issue(shop.product.sku, quantity=11)
    # then nothing is issued: all-or-nothing
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "out_of_stock"
    assert response.json()["available"] == 10
    assert world() == before


def test_unknown_product_is_404_and_changes_nothing(shop):
    before = world()
    response = shop.client.issue("NO-SUCH-SKU")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_product"
    assert world() == before


@pytest.mark.parametrize("quantity", [0, 101, "many"])
def test_quantity_outside_1_to_100_is_invalid_request(shop, quantity):
    before = world()
    response = shop.client.issue(shop.product.sku, quantity=quantity)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert "quantity" in response.json()["errors"]
    assert world() == before


def test_storefront_with_a_product_list_cannot_sell_other_products(shop):
    # given a storefront limited to another product of the same merchant
    other = make_shop(codes=1, merchant=shop.product.merchant).product
    shop.storefront.products.set([other])
    before = world()
    # when it sells the unlisted product
    response = shop.client.issue(shop.product.sku)
    # then the product is unknown to it
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_product"
    assert world() == before
    listed = shop.client.get("/api/v1/products/").json()["results"]
    assert [p["sku"] for p in listed] == [other.sku]


def test_paused_void_and_out_of_window_batches_are_not_sold(shop):
    # given the only batch paused
    batch = shop.product.batches.get()
    Batch.objects.filter(pk=batch.pk).update(status="paused")
    assert shop.client.issue(shop.product.sku).json()["code"] == "out_of_stock"
    # given it active but its window over
    Batch.objects.filter(pk=batch.pk).update(status="active", valid_until=timezone.now())
    assert shop.client.issue(shop.product.sku).json()["code"] == "out_of_stock"
    # given its window not yet open
    Batch.objects.filter(pk=batch.pk).update(
        valid_from=timezone.now() + timedelta(days=1), valid_until=None
    )
    assert shop.client.issue(shop.product.sku).json()["code"] == "out_of_stock"
    assert shop.client.get("/api/v1/products/").json()["results"][0]["available"] == 0
    assert Code.objects.filter(state="available").count() == 10


def test_the_batch_that_expires_first_is_sold_first(shop):
    # given a second batch that expires sooner than the open-ended first one
    soon = timezone.now() + timedelta(days=3)
    early = generate_batch(product=shop.product, count=2, valid_until=soon)
    # when three codes are sold
    body = shop.client.issue(shop.product.sku, quantity=3).json()
    # then the two expiring codes go first, then the open-ended batch
    by_batch = {c["id"]: Code.objects.get(pk=c["id"]).batch_id for c in body["codes"]}
    assert sorted(by_batch.values()).count(early.pk) == 2
    for item in body["codes"]:
        if by_batch[item["id"]] == early.pk:
            assert item["expires_at"].startswith(soon.date().isoformat())
        else:
            assert item["expires_at"] is None


def test_reservation_holds_codes_without_showing_them(shop):
    # when two codes are reserved
    response = shop.client.issue(shop.product.sku, quantity=2, reserve=True)
    # then
    body = response.json()
    assert response.status_code == 201
    assert body["status"] == "reserved"
    assert body["codes"] == []
    ttl = shop.storefront.reservation_ttl_seconds
    reserved_until = Issuance.objects.get(pk=body["id"]).reserved_until
    assert timedelta(seconds=ttl - 5) < reserved_until - timezone.now() <= timedelta(seconds=ttl)
    assert shop.client.get(f"/api/v1/issuances/{body['id']}/").json()["codes"] == []
    assert Code.objects.filter(state="reserved").count() == 2
    assert shop.client.get("/api/v1/products/").json()["results"][0]["available"] == 8


def test_get_issuance_shows_the_codes_again_when_issued(shop):
    body = shop.client.issue(shop.product.sku, quantity=2).json()
    again = shop.client.get(f"/api/v1/issuances/{body['id']}/")
    assert again.status_code == 200
    assert again.json() == body


def test_no_plaintext_code_reaches_the_database_or_events(shop):
    body = shop.client.issue(shop.product.sku, quantity=3, customer="c", reserve=False).json()
    texts = " ".join(
        str(row) for row in CodeEvent.objects.values_list("details", "actor", "action")
    ) + str(list(Issuance.objects.values_list("context", "customer", "order_ref")))
    for item in body["codes"]:
        assert item["code"] not in texts


def test_a_multi_code_issuance_across_two_batches_keeps_every_count(shop):
    # given a second batch expiring sooner, one of whose two codes is past its own expiry
    soon = timezone.now() + timedelta(days=3)
    early = generate_batch(product=shop.product, count=2, valid_until=soon)
    stale = early.codes.order_by("pk").first()
    Code.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    first = shop.product.batches.exclude(pk=early.pk).get()
    # when four codes are issued in one request
    response = shop.client.issue(shop.product.sku, quantity=4)
    # then the live code of the early batch and three of the other are sold, the stale one is not
    assert response.status_code == 201
    body = response.json()
    sold = Code.objects.filter(pk__in=[c["id"] for c in body["codes"]]).order_by("pk")
    assert [c["id"] for c in body["codes"]] == [c.pk for c in sold]
    assert sorted(c.batch_id for c in sold) == sorted([early.pk] + [first.pk] * 3)
    assert Code.objects.get(pk=stale.pk).state == "available"
    assert {c.state for c in sold} == {"issued"}
    assert {c.issuance_id for c in sold} == {uuid.UUID(body["id"])}
    # and every batch's counters equal its codes counted by state, with one event per code
    for batch in (early, first):
        assert stock_by_state([batch.pk])[batch.pk] == counted_stock_by_state(batch.pk)
    assert counted_stock_by_state(early.pk)["issued"] == 1
    assert counted_stock_by_state(first.pk)["issued"] == 3
    assert CodeEvent.objects.filter(issuance_id=body["id"], action="issued").count() == 4
    assert CodeEvent.objects.filter(issuance_id=body["id"], action="issuance_issued").count() == 1


def test_a_short_multi_code_claim_across_batches_changes_nothing(shop):
    # given 10 codes in one batch and 2 in another
    generate_batch(product=shop.product, count=2)
    before = world()
    # when 13 are requested
    response = shop.client.issue(shop.product.sku, quantity=13)
    # then none is issued and the refusal says how many are in stock
    assert response.status_code == 409
    assert (response.json()["code"], response.json()["available"]) == ("out_of_stock", 12)
    assert world() == before
