"""Sharded stock counters agree with the codes counted one by one."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.factories import StorefrontFactory
from vouchers.models import Code, Issuance, StockCounter
from vouchers.selectors import available_by_product, counted_stock_by_state, stock_by_state
from vouchers.services.generation import generate_batch
from vouchers.services.stock import record_move, record_moves

ZERO = {"available": 0, "reserved": 0, "issued": 0, "redeemed": 0, "void": 0}


def test_counters_equal_counted_stock_after_generation(settings, product):
    # when
    batch = generate_batch(product=product, count=40)
    # then
    assert stock_by_state([batch.pk]) == {batch.pk: {**ZERO, "available": 40}}
    assert counted_stock_by_state(batch.pk) == {**ZERO, "available": 40}
    assert StockCounter.objects.filter(batch=batch).count() == 5 * settings.VOUCHER_STOCK_SHARDS
    assert available_by_product([product.pk]) == {product.pk: 40}


def test_counters_equal_counted_stock_after_moves_across_shards(product):
    # given a batch and an issuance holding some of its codes
    batch = generate_batch(product=product, count=30)
    issuance = Issuance.objects.create(
        storefront=StorefrontFactory(merchant=product.merchant), product=product, quantity=5,
        status=Issuance.Status.ISSUED,
    )
    pks = list(Code.objects.filter(batch=batch).order_by("pk").values_list("pk", flat=True))
    # when codes change state and the moves are recorded, several times (random shards)
    Code.objects.filter(pk__in=pks[:5]).update(state=Code.State.ISSUED, issuance=issuance)
    record_moves(Counter({(batch.pk, "available", "issued"): 5}))
    Code.objects.filter(pk__in=pks[5:8]).update(state=Code.State.VOID)
    record_moves(Counter({(batch.pk, "available", "void"): 3}))
    Code.objects.filter(pk=pks[0]).update(state=Code.State.VOID, issuance=None)
    record_move(batch_id=batch.pk, from_state="issued", to_state="void")
    # then the sharded figures match the codes themselves and still add up to the size
    expected = {**ZERO, "available": 22, "issued": 4, "void": 4}
    assert counted_stock_by_state(batch.pk) == expected
    assert stock_by_state([batch.pk]) == {batch.pk: expected}
    assert sum(stock_by_state([batch.pk])[batch.pk].values()) == batch.size == 30
    assert available_by_product([product.pk]) == {product.pk: 22}


def test_moves_of_two_batches_in_one_call_touch_each_batch(product):
    a = generate_batch(product=product, count=4)
    b = generate_batch(product=product, count=6)
    record_moves(Counter({(a.pk, "available", "void"): 1, (b.pk, "available", "void"): 2}))
    assert stock_by_state([a.pk, b.pk]) == {
        a.pk: {**ZERO, "available": 3, "void": 1},
        b.pk: {**ZERO, "available": 4, "void": 2},
    }


@pytest.mark.parametrize("status", ["paused", "void"])
def test_a_batch_that_is_not_active_is_not_available(product, status):
    batch = generate_batch(product=product, count=5)
    batch.status = status
    batch.save(update_fields=["status"])
    assert available_by_product([product.pk]) == {product.pk: 0}
    assert stock_by_state([batch.pk])[batch.pk]["available"] == 5
