"""The idempotency record lives in the effect's transaction (PostgreSQL, real threads)."""

from __future__ import annotations

import threading

import pytest

from tests.concurrency import run_concurrently
from tests.snapshots import world
from tests.vouchers.api.conftest import StorefrontClient, make_shop
from vouchers.models import CodeEvent, IdempotencyRecord, Issuance, Redemption

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_duplicate_sent_while_the_first_attempt_runs_gets_409_at_once_and_no_second_effect(monkeypatch):
    # given an issued code and a first redemption that is held inside its transaction
    shop = make_shop(codes=3)
    code = shop.client.issue(shop.product.sku).json()["codes"][0]["code"]
    key = shop.client.key
    inside, release = threading.Event(), threading.Event()
    from vouchers.api import views

    real_redeem = views.redeem_code

    def held_redeem(**kwargs):
        redemption = real_redeem(**kwargs)
        inside.set()  # the effect is written, not committed
        assert release.wait(timeout=30)
        return redemption

    monkeypatch.setattr(views, "redeem_code", held_redeem)

    def attempt(i):
        if i == 1:
            assert inside.wait(timeout=30)
        try:
            return StorefrontClient(key).post("/api/v1/redemptions/", {"code": code}, idempotency_key="r-1")
        finally:
            if i == 1:
                release.set()

    # when a second attempt with the same key arrives while the first is inside
    first, second = run_concurrently(attempt, tasks=2, workers=2)
    # then the second is refused at once (it did not wait: the first was still held)
    assert second.status_code == 409
    assert second.json()["code"] == "idempotency_in_progress"
    assert first.status_code == 201
    # and there is exactly one redemption, one event, one completed record
    assert Redemption.objects.count() == 1
    assert CodeEvent.objects.filter(action="redeemed").count() == 1
    record = IdempotencyRecord.objects.get(key="r-1")
    assert (record.state, record.response_status) == ("done", 201)
    # and a retry after the first committed replays the first response
    monkeypatch.undo()
    replay = StorefrontClient(key).post("/api/v1/redemptions/", {"code": code}, idempotency_key="r-1")
    assert replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert Redemption.objects.count() == 1


def test_two_simultaneous_attempts_with_one_key_have_one_effect():
    # given a shop and one Idempotency-Key
    shop = make_shop(codes=20)
    key = shop.client.key
    body = {"sku": shop.product.sku, "quantity": 2}

    # when two attempts are released together, ten times over with fresh keys
    for round_ in range(10):
        responses = run_concurrently(
            lambda _i, k=f"pair-{round_}": StorefrontClient(key).post(
                "/api/v1/issuances/", body, idempotency_key=k),
            tasks=2, workers=2,
        )
        # then one effect: both are the same issuance, or one of them is 409 in progress
        ok = [r for r in responses if r.status_code == 201]
        assert len(ok) >= 1, [r.json() for r in responses]
        assert {r.json()["id"] for r in ok} == {ok[0].json()["id"]}
        for r in responses:
            if r.status_code != 201:
                assert (r.status_code, r.json()["code"]) == (409, "idempotency_in_progress")
    assert Issuance.objects.count() == 10
    assert IdempotencyRecord.objects.filter(state="done").count() == 10


def test_a_crash_after_the_effect_rolls_back_the_effect_and_the_key_together(monkeypatch):
    # given an issued code and a failure after the redemption was written
    shop = make_shop(codes=3)
    code = shop.client.issue(shop.product.sku).json()["codes"][0]["code"]
    from vouchers.services import idempotency

    def crash(*args, **kwargs):
        raise RuntimeError("lost the connection")

    monkeypatch.setattr(idempotency, "complete", crash)
    before = world()
    # when the request fails between the effect and the record's completion
    failed = shop.client.post("/api/v1/redemptions/", {"code": code}, idempotency_key="r-2")
    # then nothing happened: no redemption, no event, no record
    assert failed.status_code == 500
    assert world() == before
    assert not IdempotencyRecord.objects.filter(key="r-2").exists()
    # and a retry with the same key runs and redeems once
    monkeypatch.undo()
    retried = shop.client.post("/api/v1/redemptions/", {"code": code}, idempotency_key="r-2")
    assert retried.status_code == 201
    assert Redemption.objects.count() == 1
