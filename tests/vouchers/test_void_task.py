"""Voiding a large batch in the background: the admin pauses it and enqueues a task after commit.

The task takes ids and the reason, never a code, and is safe to run twice, also at the same time.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from tests.concurrency import run_concurrently
from tests.factories import StorefrontFactory, UserFactory
from tests.snapshots import world
from vouchers import crypto
from vouchers.codeformat import CodeFormat
from vouchers.models import Batch, Code, CodeEvent, Issuance
from vouchers.selectors import counted_stock_by_state, stock_by_state
from vouchers.services.generation import generate_batch
from vouchers.services.stock import record_move
from vouchers.tasks import void_batch_task

CHANGELIST = "admin:vouchers_batch_changelist"



@pytest.fixture
def inline_limit(settings):
    settings.VOUCHER_VOID_INLINE_LIMIT = 3
    return 3


def make_batch(product, count: int) -> Batch:
    return generate_batch(product=product, count=count, fmt=CodeFormat(length=16))


def sell_one(batch: Batch) -> None:
    """Test setup: one code of the batch is sold (it must stay issued when the batch is voided)."""
    issuance = Issuance.objects.create(
        storefront=StorefrontFactory(merchant=batch.product.merchant), product=batch.product,
        quantity=1, status=Issuance.Status.ISSUED,
    )
    code = Code.objects.filter(batch=batch, state=Code.State.AVAILABLE).order_by("pk").first()
    Code.objects.filter(pk=code.pk).update(state=Code.State.ISSUED, issuance=issuance)
    record_move(batch_id=batch.pk, from_state=Code.State.AVAILABLE, to_state=Code.State.ISSUED, count=1)


def void_url(batch: Batch) -> str:
    return reverse("admin:vouchers_batch_status", args=[batch.pk, "void"])


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


STATUS_ACTIONS = ("batch_paused", "batch_resumed", "batch_voided")


def status_events(batch: Batch) -> list[tuple]:
    return list(
        CodeEvent.objects.filter(batch_id=batch.pk, action__in=STATUS_ACTIONS)
        .order_by("id")
        .values_list("action", "from_state", "to_state", "actor")
    )


# --- from the admin -------------------------------------------------------------------


def test_a_void_above_the_limit_pauses_now_and_voids_in_the_background(
    staff_client, staff, product, inline_limit, eager_celery, django_capture_on_commit_callbacks
):
    # given a batch with 4 codes in stock (above the limit of 3) and one sold
    batch = make_batch(product, count=5)
    sell_one(batch)
    # when staff void it
    with django_capture_on_commit_callbacks() as callbacks:
        response = staff_client.post(void_url(batch), {"reason": "supplier file leaked"}, follow=True)
    # then the batch is paused at once, a task waits for the commit, nothing is voided yet
    assert response.status_code == 200
    assert messages_of(response) == [
        f"Batch {batch.pk}: voiding 4 codes in the background. It is paused (sells nothing) until then."
    ]
    assert len(callbacks) == 1
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.PAUSED
    assert counted_stock_by_state(batch.pk) == {
        "available": 4, "reserved": 0, "issued": 1, "redeemed": 0, "void": 0,
    }
    # when the transaction commits (the task runs eagerly here)
    callbacks[0]()
    # then the batch is void, its stock codes void, the sold one still issued
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.VOID
    expected = {"available": 0, "reserved": 0, "issued": 1, "redeemed": 0, "void": 4}
    assert counted_stock_by_state(batch.pk) == stock_by_state([batch.pk])[batch.pk] == expected
    assert CodeEvent.objects.filter(batch_id=batch.pk, action="voided", actor=f"user:{staff.pk}").count() == 4
    assert status_events(batch) == [
        ("batch_paused", "active", "paused", f"user:{staff.pk}"),
        ("batch_voided", "paused", "void", f"user:{staff.pk}"),
    ]
    assert CodeEvent.objects.get(batch_id=batch.pk, action="batch_voided").details == {
        "reason": "supplier file leaked", "codes_voided": 4,
    }


def test_a_void_at_the_limit_runs_inline(
    staff_client, product, inline_limit, django_capture_on_commit_callbacks
):
    # given a batch with exactly as many codes in stock as the limit
    batch = make_batch(product, count=inline_limit)
    # when
    with django_capture_on_commit_callbacks() as callbacks:
        response = staff_client.post(void_url(batch), {"reason": "recalled"}, follow=True)
    # then
    assert messages_of(response) == [f"Batch {batch.pk} voided: 3 codes in stock became void."]
    assert callbacks == []
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.VOID
    assert counted_stock_by_state(batch.pk)["void"] == 3


def test_the_void_action_sends_only_large_batches_to_the_background(
    staff_client, product, inline_limit, eager_celery, django_capture_on_commit_callbacks
):
    # given a small and a large batch
    small, large = make_batch(product, count=2), make_batch(product, count=6)
    # when both are voided from the list
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = staff_client.post(
            reverse(CHANGELIST),
            {"action": "void_selected", "_selected_action": [small.pk, large.pk], "confirm": "yes",
             "reason": "recalled"},
            follow=True,
        )
    # then the small one was voided inline, the large one by the task after commit
    assert sorted(messages_of(response)) == sorted([
        f"Batch {small.pk} voided: 2 codes in stock became void.",
        f"Batch {large.pk}: voiding 6 codes in the background. It is paused (sells nothing) until then.",
    ])
    assert len(callbacks) == 1
    assert set(Batch.objects.filter(pk__in=[small.pk, large.pk]).values_list("status", flat=True)) == {"void"}
    assert counted_stock_by_state(large.pk)["void"] == 6


def test_the_task_message_carries_ids_and_the_reason_but_no_code(
    staff_client, staff, product, inline_limit, monkeypatch, django_capture_on_commit_callbacks
):
    # given a large batch, and a queue that records what would be sent to the broker
    batch = make_batch(product, count=5)
    sent: list[dict] = []

    class RecordingTask:
        @staticmethod
        def delay(**kwargs):
            sent.append(kwargs)

    monkeypatch.setattr("vouchers.tasks.void_batch_task", RecordingTask)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(void_url(batch), {"reason": "leaked"})
    # then
    assert sent == [{"batch_id": batch.pk, "user_id": staff.pk, "reason": "leaked"}]
    message = json.dumps(sent)
    secrets = [crypto.decrypt_code(code) for code in Code.objects.filter(batch=batch)]
    assert [code for code in secrets if code in message] == []
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.PAUSED  # the task did not run


def test_a_blank_reason_is_refused_before_anything_changes(staff_client, product, inline_limit):
    # given
    batch = make_batch(product, count=5)
    before = world()
    # when
    response = staff_client.post(void_url(batch), {"reason": "   "})
    # then
    assert response.status_code == 200
    assert response.context["form"].errors == {"reason": ["This field is required."]}
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.ACTIVE
    assert world() == before


# --- the task -------------------------------------------------------------------------


def test_the_task_acknowledges_late():
    assert void_batch_task.acks_late is True


def test_the_task_is_safe_to_run_twice(product):
    # given
    batch = make_batch(product, count=5)
    user = UserFactory(is_staff=True)
    # when it runs once
    first = void_batch_task(batch_id=batch.pk, user_id=user.pk, reason="recalled")
    after_first = world()
    # and again (a redelivery)
    second = void_batch_task(batch_id=batch.pk, user_id=user.pk, reason="recalled")
    # then the second run returns quietly and changes nothing
    assert (first, second) == (5, 0)
    assert world() == after_first
    assert CodeEvent.objects.filter(batch_id=batch.pk, action="batch_voided").count() == 1
    assert counted_stock_by_state(batch.pk) == stock_by_state([batch.pk])[batch.pk] == {
        "available": 0, "reserved": 0, "issued": 0, "redeemed": 0, "void": 5,
    }


def test_the_task_for_a_missing_batch_or_a_deleted_user_is_quiet(product):
    # given
    batch = make_batch(product, count=2)
    before = world()
    # when the batch does not exist
    missing = void_batch_task(batch_id=batch.pk + 1000, user_id=None, reason="recalled")
    # then nothing happens
    assert missing == 0
    assert world() == before
    # when the user who asked is gone, the void is recorded as the system's
    assert void_batch_task(batch_id=batch.pk, user_id=987654, reason="recalled") == 2
    assert CodeEvent.objects.get(batch_id=batch.pk, action="batch_voided").actor == "system"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_deliveries_of_the_task_at_the_same_time_void_the_batch_once(merchant):
    # given a batch of 40 codes and the task delivered twice at once
    from tests.factories import ProductFactory

    batch = make_batch(ProductFactory(merchant=merchant), count=40)
    user = UserFactory(is_staff=True)
    # when
    results = run_concurrently(
        lambda _i: void_batch_task(batch_id=batch.pk, user_id=user.pk, reason="race"), tasks=2, workers=2
    )
    # then exactly one run voided the 40 codes, once
    assert sorted(results) == [0, 40]
    assert CodeEvent.objects.filter(batch_id=batch.pk, action="voided").count() == 40
    assert CodeEvent.objects.filter(batch_id=batch.pk, action="batch_voided").count() == 1
    assert counted_stock_by_state(batch.pk) == stock_by_state([batch.pk])[batch.pk] == {
        "available": 0, "reserved": 0, "issued": 0, "redeemed": 0, "void": 40,
    }
