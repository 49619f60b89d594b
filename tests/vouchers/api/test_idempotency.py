import pytest

from tests.snapshots import world
from vouchers.models import IdempotencyRecord, Issuance

pytestmark = pytest.mark.django_db


def test_missing_idempotency_key_is_refused_and_changes_nothing(shop):
    before = world()
    response = shop.client.post("/api/v1/issuances/", {"sku": shop.product.sku}, idempotency_key=None)
    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_required"
    assert world() == before
    too_long = shop.client.post("/api/v1/issuances/", {"sku": shop.product.sku},
                                idempotency_key="k" * 256)
    assert too_long.json()["code"] == "idempotency_key_required"


def test_replay_returns_the_first_response_and_has_no_second_effect(shop):
    first = shop.client.post("/api/v1/issuances/", {"sku": shop.product.sku, "quantity": 2},
                             idempotency_key="k-1")
    before = world()
    replay = shop.client.post("/api/v1/issuances/", {"quantity": 2, "sku": shop.product.sku},
                              idempotency_key="k-1")
    assert replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert "Idempotent-Replayed" not in first
    assert world() == before


def test_same_key_with_another_body_is_422_and_changes_nothing(shop):
    shop.client.post("/api/v1/issuances/", {"sku": shop.product.sku}, idempotency_key="k-2")
    before = world()
    response = shop.client.post("/api/v1/issuances/", {"sku": shop.product.sku, "quantity": 3},
                                idempotency_key="k-2")
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert world() == before


def test_a_refusal_is_replayed_too(shop):
    first = shop.client.post("/api/v1/issuances/", {"sku": shop.product.sku, "quantity": 11},
                             idempotency_key="k-3")
    assert first.json()["code"] == "out_of_stock"
    replay = shop.client.post("/api/v1/issuances/", {"sku": shop.product.sku, "quantity": 11},
                              idempotency_key="k-3")
    assert replay.status_code == 409
    assert replay.json() == first.json()
    assert replay["Idempotent-Replayed"] == "true"
    assert replay["Content-Type"] == "application/problem+json"


def test_keys_are_scoped_to_the_caller(shop):
    from tests.vouchers.api.conftest import make_shop

    other = make_shop(codes=2)
    a = shop.client.post("/api/v1/issuances/", {"sku": shop.product.sku}, idempotency_key="same")
    b = other.client.post("/api/v1/issuances/", {"sku": other.product.sku}, idempotency_key="same")
    assert (a.status_code, b.status_code) == (201, 201)
    assert Issuance.objects.count() == 2


def test_records_hold_no_plaintext_code(shop):
    body = shop.client.issue(shop.product.sku, quantity=3).json()
    redeemed = shop.client.redeem(body["codes"][0]["code"])
    assert redeemed.status_code == 201
    stored = " ".join(
        f"{r.fingerprint} {r.response_body}" for r in IdempotencyRecord.objects.all()
    )
    for item in body["codes"]:
        assert item["code"] not in stored
        assert item["code"].lower() not in stored
    issuance_record = IdempotencyRecord.objects.filter(response_body__id=body["id"]).get()
    assert [c["id"] for c in issuance_record.response_body["codes"]] == [c["id"] for c in body["codes"]]


def test_unexpected_failure_forgets_the_key_so_a_retry_runs(shop, monkeypatch):
    from vouchers.api import views

    def broken(**kwargs):
        raise RuntimeError("database exploded with secret detail")

    monkeypatch.setattr(views, "issue_codes", broken)
    before = world()
    failed = shop.client.post("/api/v1/issuances/", {"sku": shop.product.sku}, idempotency_key="k-5")
    assert failed.status_code == 500
    assert failed["Content-Type"] == "application/problem+json"
    assert failed.json()["code"] == "internal_error"
    assert "secret" not in failed.content.decode()
    assert world() == before
    assert not IdempotencyRecord.objects.filter(key="k-5").exists()
    monkeypatch.undo()
    retried = shop.client.post("/api/v1/issuances/", {"sku": shop.product.sku}, idempotency_key="k-5")
    assert retried.status_code == 201


def test_stale_in_progress_record_of_a_dead_attempt_is_taken_over(shop, settings):
    from datetime import timedelta

    from django.utils import timezone

    from vouchers.services.idempotency import fingerprint

    body = {"sku": shop.product.sku}
    record = IdempotencyRecord.objects.create(
        caller=f"storefront:{shop.storefront.pk}", key="k-6",
        fingerprint=fingerprint(method="POST", path="/api/v1/issuances/", body=body),
    )
    fresh = shop.client.post("/api/v1/issuances/", body, idempotency_key="k-6")
    assert fresh.status_code == 409
    assert fresh.json()["code"] == "idempotency_in_progress"
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_STALE_SECONDS + 1)
    )
    taken_over = shop.client.post("/api/v1/issuances/", body, idempotency_key="k-6")
    assert taken_over.status_code == 201
    assert Issuance.objects.count() == 1


def test_purge_keeps_records_for_at_least_a_day(shop):
    from datetime import timedelta

    from django.utils import timezone

    from vouchers.tasks import purge_idempotency_records

    shop.client.issue(shop.product.sku)
    shop.client.issue(shop.product.sku)
    old, young = IdempotencyRecord.objects.order_by("pk")
    IdempotencyRecord.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=49))
    IdempotencyRecord.objects.filter(pk=young.pk).update(created_at=timezone.now() - timedelta(hours=23))
    assert purge_idempotency_records() == 1
    assert list(IdempotencyRecord.objects.values_list("pk", flat=True)) == [young.pk]
