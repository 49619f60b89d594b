"""Pausing, resuming and voiding a batch (vouchers/services/batch_status.py)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from django.utils import timezone

from tests.factories import StorefrontFactory, UserFactory
from vouchers.codeformat import CodeFormat
from vouchers.models import Batch, Code, CodeEvent, Issuance
from vouchers.selectors import counted_stock_by_state, stock_by_state
from vouchers.services.batch_status import (
    InvalidBatchTransition,
    VoidReasonRequired,
    pause_batch,
    resume_batch,
    void_batch,
)
from vouchers.services.generation import generate_batch
from vouchers.services.stock import record_move


def make_batch(product, count: int = 10) -> Batch:
    return generate_batch(product=product, count=count, fmt=CodeFormat(length=16))


def move_codes(batch: Batch, *, count: int, to_state: str) -> list[int]:
    """Test setup: put `count` available codes of `batch` into `to_state` under one issuance."""
    storefront = StorefrontFactory(merchant=batch.product.merchant)
    issuance = Issuance.objects.create(
        storefront=storefront, product=batch.product, quantity=count,
        status=Issuance.Status.RESERVED if to_state == Code.State.RESERVED else Issuance.Status.ISSUED,
    )
    in_stock = Code.objects.filter(batch=batch, state=Code.State.AVAILABLE).order_by("pk")
    ids = list(in_stock.values_list("pk", flat=True)[:count])
    now = timezone.now()
    Code.objects.filter(pk__in=ids).update(
        state=to_state, issuance=issuance, state_changed_at=now,
        redeemed_at=now if to_state == Code.State.REDEEMED else None,
    )
    record_move(batch_id=batch.pk, from_state=Code.State.AVAILABLE, to_state=to_state, count=count)
    return ids


def snapshot(batch: Batch) -> dict:
    """Everything a refused change must leave as it was."""
    return {
        "status": Batch.objects.get(pk=batch.pk).status,
        "events": CodeEvent.objects.count(),
        "stock": stock_by_state([batch.pk])[batch.pk],
        "counted": counted_stock_by_state(batch.pk),
        "states": dict(Code.objects.filter(batch=batch).values_list("pk", "state")),
    }


@pytest.fixture
def staff_user(db):
    return UserFactory(is_staff=True)


def test_pause_stops_an_active_batch_and_records_who_did_it(product, staff_user):
    # given
    batch = make_batch(product)
    stock_before = stock_by_state([batch.pk])[batch.pk]
    events_before = CodeEvent.objects.count()
    # when
    returned = pause_batch(batch=batch, actor_user=staff_user)
    # then
    assert returned.status == Batch.Status.PAUSED
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.PAUSED
    event = CodeEvent.objects.latest("id")
    assert CodeEvent.objects.count() == events_before + 1
    assert (event.action, event.batch_id, event.code_id) == ("batch_paused", batch.pk, None)
    assert (event.from_state, event.to_state, event.actor) == ("active", "paused", f"user:{staff_user.pk}")
    assert stock_by_state([batch.pk])[batch.pk] == stock_before == counted_stock_by_state(batch.pk)


def test_resume_sells_a_paused_batch_again(product, staff_user):
    # given
    batch = make_batch(product)
    pause_batch(batch=batch, actor_user=staff_user)
    # when
    resume_batch(batch=batch, actor_user=staff_user)
    # then
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.ACTIVE
    event = CodeEvent.objects.latest("id")
    assert (event.action, event.from_state, event.to_state) == ("batch_resumed", "paused", "active")


@pytest.mark.parametrize(
    ("start", "change", "message"),
    [
        ("paused", pause_batch, "a batch that is paused cannot be paused"),
        ("active", resume_batch, "a batch that is active cannot be resumed"),
        ("void", pause_batch, "a batch that is void cannot be paused"),
        ("void", resume_batch, "a batch that is void cannot be resumed"),
    ],
)
def test_an_illegal_pause_or_resume_is_refused_and_changes_nothing(
    product, staff_user, start, change, message
):
    # given
    batch = make_batch(product)
    Batch.objects.filter(pk=batch.pk).update(status=start)
    batch.refresh_from_db()
    before = snapshot(batch)
    # when
    with pytest.raises(InvalidBatchTransition) as excinfo:
        change(batch=batch, actor_user=staff_user)
    # then
    assert excinfo.value.code == "invalid_state"
    assert excinfo.value.detail == message
    assert snapshot(batch) == before


def test_void_moves_only_codes_in_stock_to_void_with_one_event_each(product, staff_user):
    # given a batch of 12: 3 issued, 2 redeemed, 1 reserved, 6 in stock
    batch = make_batch(product, count=12)
    issued = move_codes(batch, count=3, to_state=Code.State.ISSUED)
    redeemed = move_codes(batch, count=2, to_state=Code.State.REDEEMED)
    reserved = move_codes(batch, count=1, to_state=Code.State.RESERVED)
    in_stock = set(Code.objects.filter(batch=batch, state=Code.State.AVAILABLE).values_list("pk", flat=True))
    events_before = CodeEvent.objects.count()
    # when
    voided = void_batch(batch=batch, actor_user=staff_user, reason="supplier recalled the cards")
    # then
    assert voided == 6
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.VOID
    expected = {"available": 0, "reserved": 1, "issued": 3, "redeemed": 2, "void": 6}
    assert counted_stock_by_state(batch.pk) == expected
    assert stock_by_state([batch.pk])[batch.pk] == expected
    assert set(Code.objects.filter(pk__in=issued).values_list("state", flat=True)) == {"issued"}
    assert set(Code.objects.filter(pk__in=redeemed).values_list("state", flat=True)) == {"redeemed"}
    assert set(Code.objects.filter(pk__in=reserved).values_list("state", flat=True)) == {"reserved"}
    assert set(Code.objects.filter(state=Code.State.VOID).values_list("pk", flat=True)) == in_stock
    assert CodeEvent.objects.count() == events_before + 7
    code_events = CodeEvent.objects.filter(action="voided")
    assert sorted(e.code_id for e in code_events) == sorted(in_stock)
    assert {(e.batch_id, e.from_state, e.to_state, e.actor) for e in code_events} == {
        (batch.pk, "available", "void", f"user:{staff_user.pk}")
    }
    assert {str(e.details) for e in code_events} == {str({"cause": "batch_void"})}
    batch_event = CodeEvent.objects.get(action="batch_voided")
    assert (batch_event.batch_id, batch_event.code_id) == (batch.pk, None)
    assert (batch_event.from_state, batch_event.to_state) == ("active", "void")
    assert batch_event.details == {"reason": "supplier recalled the cards", "codes_voided": 6}
    assert all(c.state_changed_at is not None for c in Code.objects.filter(pk__in=in_stock))


def test_void_of_a_paused_batch_is_allowed(product, staff_user):
    # given
    batch = make_batch(product, count=4)
    pause_batch(batch=batch, actor_user=staff_user)
    # when
    voided = void_batch(batch=batch, actor_user=staff_user, reason="fraud suspected")
    # then
    assert voided == 4
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.VOID
    assert CodeEvent.objects.get(action="batch_voided").from_state == "paused"
    assert counted_stock_by_state(batch.pk) == stock_by_state([batch.pk])[batch.pk] == {
        "available": 0, "reserved": 0, "issued": 0, "redeemed": 0, "void": 4,
    }


def test_void_leaves_other_batches_alone(product, staff_user):
    # given
    batch, other = make_batch(product, count=3), make_batch(product, count=5)
    # when
    void_batch(batch=batch, actor_user=staff_user, reason="recalled")
    # then
    assert Batch.objects.get(pk=other.pk).status == Batch.Status.ACTIVE
    assert counted_stock_by_state(other.pk)["available"] == 5
    assert stock_by_state([other.pk])[other.pk]["available"] == 5
    assert not CodeEvent.objects.filter(batch_id=other.pk, action="voided").exists()


def test_voiding_a_void_batch_is_refused_and_changes_nothing(product, staff_user):
    # given
    batch = make_batch(product, count=3)
    void_batch(batch=batch, actor_user=staff_user, reason="first")
    before = snapshot(batch)
    # when
    with pytest.raises(InvalidBatchTransition) as excinfo:
        void_batch(batch=batch, actor_user=staff_user, reason="again")
    # then
    assert excinfo.value.code == "invalid_state"
    assert excinfo.value.detail == "a batch that is void cannot be voided"
    assert snapshot(batch) == before


@pytest.mark.parametrize("reason", ["", "   "])
def test_void_without_a_reason_is_refused_and_changes_nothing(product, staff_user, reason):
    # given
    batch = make_batch(product, count=3)
    before = snapshot(batch)
    # when
    with pytest.raises(VoidReasonRequired) as excinfo:
        void_batch(batch=batch, actor_user=staff_user, reason=reason)
    # then
    assert excinfo.value.code == "reason_required"
    assert snapshot(batch) == before


def test_a_canary_stays_void_and_gets_no_event(product, staff_user):
    # given a batch of 3 with one planted canary (void from the start, outside the stock)
    from vouchers.services.canaries import plant_canaries

    batch = make_batch(product, count=3)
    plant_canaries(batch=batch, count=1, actor_user=staff_user)
    canary = Code.objects.get(batch=batch, is_canary=True)
    # when
    voided = void_batch(batch=batch, actor_user=staff_user, reason="recalled")
    # then the three stock codes are voided, the canary is untouched
    assert voided == 3
    assert CodeEvent.objects.filter(code_id=canary.pk).values_list("action", flat=True).get() == (
        "canary_planted"
    )
    assert counted_stock_by_state(batch.pk) == stock_by_state([batch.pk])[batch.pk]
    assert sum(counted_stock_by_state(batch.pk).values()) == batch.size == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_voids_of_one_batch_void_it_once(merchant):
    # given a batch of 50 codes and two staff members pressing "void" at the same moment
    from tests.factories import ProductFactory

    product = ProductFactory(merchant=merchant)
    batch = make_batch(product, count=50)
    users = [UserFactory(is_staff=True), UserFactory(is_staff=True)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    lock = threading.Lock()

    def press_void(user):
        try:
            barrier.wait(timeout=10)
            void_batch(batch=Batch.objects.get(pk=batch.pk), actor_user=user, reason="race")
            result = "voided"
        except InvalidBatchTransition:
            result = "refused"
        finally:
            connections.close_all()
        with lock:
            outcomes.append(result)

    # when
    threads = [threading.Thread(target=press_void, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # then exactly one voided the 50 codes, once
    assert sorted(outcomes) == ["refused", "voided"]
    assert CodeEvent.objects.filter(batch_id=batch.pk, action="voided").count() == 50
    assert CodeEvent.objects.filter(batch_id=batch.pk, action="batch_voided").count() == 1
    assert counted_stock_by_state(batch.pk) == stock_by_state([batch.pk])[batch.pk] == {
        "available": 0, "reserved": 0, "issued": 0, "redeemed": 0, "void": 50,
    }
    assert connection.vendor == "postgresql"
