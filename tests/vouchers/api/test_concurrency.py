"""Exactly-once under real concurrency: PostgreSQL, real threads, committed data."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.concurrency import run_concurrently
from tests.vouchers.api.conftest import StorefrontClient, make_shop
from vouchers.models import Code, CodeEvent, IdempotencyRecord, Issuance, Redemption
from vouchers.selectors import counted_stock_by_state, stock_by_state

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
WORKERS = 40


def test_fifty_concurrent_redemptions_of_one_code_succeed_exactly_once_twenty_times_over():
    # given a shop with 20 issued codes
    shop = make_shop(codes=20)
    issued = [
        code for i in range(4)
        for code in shop.client.issue(shop.product.sku, quantity=5, customer=f"c{i}").json()["codes"]
    ]
    assert len(issued) == 20
    key = shop.client.key
    for round_, item in enumerate(issued):
        # when 50 clients redeem the same code at once
        def redeem(_i, code=item["code"]):
            return StorefrontClient(key).redeem(code)

        responses = run_concurrently(redeem, tasks=50, workers=WORKERS)
        # then exactly one 201 and 49 409 already_redeemed, all naming the same time
        statuses = Counter(r.status_code for r in responses)
        assert statuses == {201: 1, 409: 49}, (round_, statuses)
        winner = next(r.json() for r in responses if r.status_code == 201)
        assert {r.json()["code"] for r in responses if r.status_code == 409} == {"already_redeemed"}
        assert {r.json()["redeemed_at"] for r in responses if r.status_code == 409} == {
            winner["redeemed_at"]
        }
        assert Redemption.objects.filter(code_id=item["id"]).count() == 1
        assert CodeEvent.objects.filter(code_id=item["id"], action="redeemed").count() == 1
    batch_id = Code.objects.get(pk=issued[0]["id"]).batch_id
    assert counted_stock_by_state(batch_id)["redeemed"] == 20
    assert stock_by_state([batch_id])[batch_id] == counted_stock_by_state(batch_id)


def test_flash_sale_sells_each_code_once_and_refuses_the_rest():
    # given 50 codes and 200 buyers arriving together
    shop = make_shop(codes=50)
    key = shop.client.key

    def buy(i):
        return StorefrontClient(key).issue(shop.product.sku, customer=f"buyer-{i}")

    # when they all try to buy one code
    responses = run_concurrently(buy, tasks=200, workers=WORKERS)
    # then exactly 50 are issued and 150 are out of stock
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 50, 409: 150}
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"out_of_stock"}
    sold = [c["id"] for r in responses if r.status_code == 201 for c in r.json()["codes"]]
    assert len(sold) == len(set(sold)) == 50
    # and no code is in two issuances, and counts by state add up to the batch size
    assert Issuance.objects.filter(status="issued").count() == 50
    assert Code.objects.filter(state="issued", issuance__isnull=False).count() == 50
    batch = shop.product.batches.get()
    counted = counted_stock_by_state(batch.pk)
    assert counted == {"available": 0, "reserved": 0, "issued": 50, "redeemed": 0, "void": 0}
    assert sum(counted.values()) == batch.size
    assert stock_by_state([batch.pk])[batch.pk] == counted


def test_one_idempotency_key_sent_twenty_times_at_once_has_one_effect():
    # given a shop and one Idempotency-Key
    shop = make_shop(codes=10)
    key = shop.client.key

    def send(_i):
        return StorefrontClient(key).post(
            "/api/v1/issuances/", {"sku": shop.product.sku, "quantity": 2}, idempotency_key="order-42"
        )

    # when the same request is sent 20 times at once
    responses = run_concurrently(send, tasks=20, workers=20)
    # then there is one issuance of 2 codes; every answer is it or "in progress"
    assert Issuance.objects.count() == 1
    assert Code.objects.filter(state="issued").count() == 2
    issuance_id = str(Issuance.objects.get().pk)
    for response in responses:
        if response.status_code == 201:
            assert response.json()["id"] == issuance_id
            assert len(response.json()["codes"]) == 2
        else:
            assert response.status_code == 409
            assert response.json()["code"] == "idempotency_in_progress"
    assert sum(r.status_code == 201 for r in responses) >= 1
    # and a later retry replays the first response, codes included
    replay = StorefrontClient(key).post(
        "/api/v1/issuances/", {"sku": shop.product.sku, "quantity": 2}, idempotency_key="order-42"
    )
    first = next(r for r in responses if r.status_code == 201)
    assert replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert IdempotencyRecord.objects.get().state == "done"


def test_concurrent_reservations_confirms_and_cancels_keep_counts_exact():
    # given 30 codes
    shop = make_shop(codes=30)
    key = shop.client.key

    def reserve_then_settle(i):
        client = StorefrontClient(key)
        response = client.issue(shop.product.sku, quantity=2, reserve=True)
        if response.status_code != 201:
            return response.status_code
        issuance_id = response.json()["id"]
        settle = client.confirm(issuance_id) if i % 2 else client.cancel(issuance_id)
        return settle.status_code

    # when 40 customers reserve two codes and half confirm, half cancel
    results = run_concurrently(reserve_then_settle, tasks=40, workers=WORKERS)
    # then every settle succeeded or stock ran out, and the counters match the rows
    assert set(results) <= {200, 409}
    batch = shop.product.batches.get()
    counted = counted_stock_by_state(batch.pk)
    assert counted["reserved"] == 0
    assert sum(counted.values()) == batch.size == 30
    assert counted["issued"] == 2 * Issuance.objects.filter(status="issued").count()
    assert stock_by_state([batch.pk])[batch.pk] == counted


def test_concurrent_reversals_and_redemptions_of_one_code_keep_one_live_redemption():
    # given 5 issued codes, each redeemed once
    shop = make_shop(codes=5)
    issued = shop.client.issue(shop.product.sku, quantity=5, customer="rev").json()["codes"]
    key = shop.client.key
    for round_, item in enumerate(issued):
        first = shop.client.redeem(item["code"]).json()["id"]

        # when 20 clients reverse that redemption while 20 others redeem the code again
        def act(i, code=item["code"], redemption_id=first):
            client = StorefrontClient(key)
            return ("reverse", client.reverse(redemption_id)) if i % 2 else ("redeem", client.redeem(code))

        outcomes = run_concurrently(act, tasks=40, workers=WORKERS)
        reversals = Counter(r.status_code for kind, r in outcomes if kind == "reverse")
        redemptions = Counter(r.status_code for kind, r in outcomes if kind == "redeem")
        # then the redemption was reversed exactly once, the others refused as already reversed
        assert reversals == {200: 1, 409: 19}, (round_, reversals)
        assert {r.json()["code"] for kind, r in outcomes if kind == "reverse" and r.status_code == 409} == {
            "already_reversed"}
        # and at most one new redemption took the code, which holds at most one live one
        assert redemptions[201] <= 1 and redemptions[201] + redemptions[409] == 20, (round_, redemptions)
        live = Redemption.objects.filter(code_id=item["id"], reversed_at__isnull=True).count()
        assert live == redemptions[201]
        code = Code.objects.get(pk=item["id"])
        assert code.state == ("redeemed" if live else "issued")
        assert CodeEvent.objects.filter(code_id=item["id"], action="redemption_reversed").count() == 1
    batch_id = Code.objects.get(pk=issued[0]["id"]).batch_id
    assert stock_by_state([batch_id])[batch_id] == counted_stock_by_state(batch_id)


def test_confirms_and_cancels_of_one_reservation_at_once_settle_it_exactly_once():
    # given 20 codes
    shop = make_shop(codes=20)
    key = shop.client.key
    for round_ in range(10):
        issuance_id = shop.client.issue(shop.product.sku, quantity=2, reserve=True).json()["id"]

        # when 10 clients confirm the reservation while 10 others cancel it
        def act(i, issuance_id=issuance_id):
            client = StorefrontClient(key)
            if i % 2:
                return "confirm", client.confirm(issuance_id)
            return "cancel", client.cancel(issuance_id)

        outcomes = run_concurrently(act, tasks=20, workers=20)
        # then one side won: every request of that side is answered 200 with the same
        # status, every request of the other side 409 invalid_state
        status = Issuance.objects.get(pk=issuance_id).status
        assert status in ("issued", "cancelled"), round_
        winner = "confirm" if status == "issued" else "cancel"
        for kind, response in outcomes:
            if kind == winner:
                assert (response.status_code, response.json()["status"]) == (200, status), round_
            else:
                assert (response.status_code, response.json()["code"]) == (409, "invalid_state"), round_
        # and each code moved once, with its one event
        action = "confirmed" if status == "issued" else "cancelled"
        assert CodeEvent.objects.filter(issuance_id=issuance_id, action=action).count() == 2
        assert CodeEvent.objects.filter(issuance_id=issuance_id, action=f"issuance_{action}").count() == 1
    batch = shop.product.batches.get()
    counted = counted_stock_by_state(batch.pk)
    assert counted["reserved"] == 0
    assert counted["issued"] == 2 * Issuance.objects.filter(status="issued").count()
    assert stock_by_state([batch.pk])[batch.pk] == counted
