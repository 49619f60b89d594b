from datetime import timedelta

import pytest
from django.utils import timezone

from tests.snapshots import world
from vouchers.models import Code, CodeEvent, Issuance
from vouchers.selectors import counted_stock_by_state, stock_by_state
from vouchers.tasks import release_expired_reservations

pytestmark = pytest.mark.django_db


def reserve(shop, quantity=2) -> str:
    response = shop.client.issue(shop.product.sku, quantity=quantity, reserve=True)
    assert response.status_code == 201
    return response.json()["id"]


def run_out(issuance_id):
    Issuance.objects.filter(pk=issuance_id).update(reserved_until=timezone.now() - timedelta(seconds=1))


def assert_counters_match(shop):
    batch = shop.product.batches.get()
    assert stock_by_state([batch.pk])[batch.pk] == counted_stock_by_state(batch.pk)


def test_confirm_issues_the_reserved_codes(shop):
    issuance_id = reserve(shop)
    held = sorted(Code.objects.filter(state="reserved").values_list("pk", flat=True))
    response = shop.client.confirm(issuance_id)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "issued"
    assert [c["id"] for c in body["codes"]] == held
    assert [c["code"] for c in body["codes"]] == shop.plaintexts()[:2]
    assert Code.objects.filter(state="issued").count() == 2
    assert_counters_match(shop)


def test_confirm_writes_one_event_per_code_and_one_for_the_issuance_and_a_second_confirm_only_answers(shop):
    # given a confirmed reservation of three codes
    issuance_id = reserve(shop, quantity=3)
    first = shop.client.confirm(issuance_id).json()
    events = CodeEvent.objects.filter(issuance_id=issuance_id, action__in=["confirmed", "issuance_confirmed"])
    assert sorted((e.action, e.from_state, e.to_state) for e in events) == [
        ("confirmed", "reserved", "issued")] * 3 + [("issuance_confirmed", "", "issued")]
    assert events.get(action="issuance_confirmed").details == {"quantity": 3}
    assert Issuance.objects.get(pk=issuance_id).status == "issued"
    # when it is confirmed again, under another key
    before = world()
    again = shop.client.confirm(issuance_id)
    # then the issued issuance is answered with the same codes and nothing changes
    assert again.status_code == 200
    assert again.json() == first
    assert world() == before
    assert_counters_match(shop)


def test_confirm_after_expiry_is_refused_and_releases_the_codes(shop):
    # given a reservation that ran out, not yet swept by the task
    issuance_id = reserve(shop)
    run_out(issuance_id)
    # when the storefront confirms it
    response = shop.client.confirm(issuance_id)
    # then it is refused and the codes are back in stock at once
    assert response.status_code == 409
    assert response.json()["code"] == "reservation_expired"
    assert Issuance.objects.get(pk=issuance_id).status == "expired"
    assert Code.objects.filter(state="available").count() == 10
    assert CodeEvent.objects.filter(action="expired").count() == 2
    assert_counters_match(shop)
    # and a second confirm says the same and changes nothing
    before = world()
    assert shop.client.confirm(issuance_id).json()["code"] == "reservation_expired"
    assert world() == before


def test_beat_task_releases_expired_reservations_and_is_safe_twice(shop):
    # given one live and one expired reservation
    live = reserve(shop)
    expired = reserve(shop)
    run_out(expired)
    # when the task runs twice
    assert release_expired_reservations() == 1
    assert release_expired_reservations() == 0
    # then only the expired one was released
    assert Issuance.objects.get(pk=expired).status == "expired"
    assert Issuance.objects.get(pk=live).status == "reserved"
    assert Code.objects.filter(state="reserved").count() == 2
    assert Code.objects.filter(state="available").count() == 8
    assert_counters_match(shop)


def test_cancel_returns_codes_to_stock(shop):
    issuance_id = reserve(shop, quantity=3)
    response = shop.client.cancel(issuance_id)
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["codes"] == []
    assert Code.objects.filter(state="available", issuance__isnull=True).count() == 10
    assert shop.client.get("/api/v1/products/").json()["results"][0]["available"] == 10
    assert_counters_match(shop)


def test_cancel_writes_one_event_per_code_and_one_for_the_issuance_and_a_second_cancel_only_answers(shop):
    # given a cancelled reservation of three codes
    issuance_id = reserve(shop, quantity=3)
    held = sorted(Code.objects.filter(state="reserved").values_list("pk", flat=True))
    first = shop.client.cancel(issuance_id).json()
    events = CodeEvent.objects.filter(issuance_id=issuance_id, action__in=["cancelled", "issuance_cancelled"])
    assert sorted((e.action, e.code_id, e.from_state, e.to_state) for e in events if e.code_id) == [
        ("cancelled", pk, "reserved", "available") for pk in held]
    assert [(e.from_state, e.to_state, e.details) for e in events if not e.code_id] == [
        ("", "cancelled", {"quantity": 3})]
    # when it is cancelled again, under another key
    before = world()
    again = shop.client.cancel(issuance_id)
    # then the cancelled issuance is answered as it is and nothing changes
    assert again.status_code == 200
    assert again.json() == first
    assert world() == before
    assert_counters_match(shop)


def test_refusals_of_unknown_and_final_issuances_are_replayed_under_their_key(shop):
    # given an issued issuance and an id that is nobody's
    issued = shop.client.issue(shop.product.sku).json()["id"]
    unknown = "00000000-0000-4000-8000-000000000000"
    before = world()
    for path, status, code in (
        (f"/api/v1/issuances/{issued}/cancel/", 409, "invalid_state"),
        (f"/api/v1/issuances/{unknown}/cancel/", 404, "not_found"),
        (f"/api/v1/issuances/{unknown}/confirm/", 404, "not_found"),
    ):
        # when the refusal is asked for twice under one key
        first = shop.client.post(path, {}, idempotency_key=f"k-{status}-{path[-40:-1]}")
        again = shop.client.post(path, {}, idempotency_key=f"k-{status}-{path[-40:-1]}")
        # then the second is the stored first answer, and nothing changed
        assert (first.status_code, first.json()["code"]) == (status, code)
        assert (again.status_code, again.json()) == (status, first.json())
        assert again.headers["Idempotent-Replayed"] == "true"
    assert world() == before


def test_cancel_of_an_issued_issuance_is_invalid_state_and_changes_nothing(shop):
    issuance_id = shop.client.issue(shop.product.sku).json()["id"]
    before = world()
    response = shop.client.cancel(issuance_id)
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_state"
    assert world() == before


def test_confirm_of_a_cancelled_reservation_is_invalid_state_and_changes_nothing(shop):
    issuance_id = reserve(shop)
    shop.client.cancel(issuance_id)
    before = world()
    response = shop.client.confirm(issuance_id)
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_state"
    assert world() == before


def test_reservation_time_to_live_comes_from_the_storefront(shop):
    shop.storefront.reservation_ttl_seconds = 60
    shop.storefront.save()
    issuance_id = reserve(shop)
    left = Issuance.objects.get(pk=issuance_id).reserved_until - timezone.now()
    assert timedelta(seconds=55) < left <= timedelta(seconds=60)


def test_codes_held_when_their_batch_is_voided_go_to_void_not_back_to_stock(shop):
    # given a reservation, then its batch voided by staff
    from tests.factories import StaffFactory
    from vouchers.services.batch_status import void_batch

    issuance_id = reserve(shop, quantity=2)
    batch = shop.product.batches.get()
    void_batch(batch=batch, actor_user=StaffFactory(merchant=shop.product.merchant).user, reason="leak")
    # when the reservation is cancelled
    assert shop.client.cancel(issuance_id).status_code == 200
    # then its codes are void, none is available, and the counters agree
    counted = counted_stock_by_state(batch.pk)
    assert counted == {"available": 0, "reserved": 0, "issued": 0, "redeemed": 0, "void": 10}
    assert_counters_match(shop)


def test_confirm_of_codes_whose_window_closed_meanwhile_is_refused_and_releases_them(shop):
    # given a live reservation whose batch stopped being valid while it was held
    from vouchers.models import Batch

    issuance_id = reserve(shop)
    Batch.objects.filter(pk=shop.product.batches.get().pk).update(
        valid_until=timezone.now() - timedelta(seconds=1)
    )
    # when the storefront confirms it
    response = shop.client.confirm(issuance_id)
    # then no expired code is sold: refused, and the codes go back
    assert response.status_code == 409
    assert response.json()["code"] == "reservation_expired"
    assert Issuance.objects.get(pk=issuance_id).status == "expired"
    assert Code.objects.filter(state="issued").count() == 0
    assert_counters_match(shop)
