"""Planting canary codes: out of stock for good, shaped like the batch's codes, shown once."""

from __future__ import annotations

import re

import pytest

from vouchers.codeformat import CodeFormat
from vouchers.exceptions import InvalidBatchSettings
from vouchers.models import Batch, Code, CodeEvent
from vouchers.selectors import counted_stock_by_state, find_code, stock_by_state
from vouchers.services.canaries import MAX_CANARIES_PER_CALL, plant_canaries


def test_canaries_are_void_outside_the_stock_and_found_by_their_plaintext(generated_batch, staff_user):
    # given a batch of 5 and its stock figures
    stock_before = stock_by_state([generated_batch.pk])
    # when 3 canaries are planted
    plaintexts = plant_canaries(batch=generated_batch, count=3, actor_user=staff_user)
    # then 3 distinct plaintexts come back, each a void canary of this batch
    assert len(set(plaintexts)) == 3
    rows = [find_code(p) for p in plaintexts]
    assert all(r.batch_id == generated_batch.pk and r.is_canary and r.state == "void" for r in rows)
    assert all(r.issuance_id is None for r in rows)
    # and the batch's size and stock are untouched (canaries are outside its accounting)
    generated_batch.refresh_from_db()
    assert generated_batch.size == 5
    assert stock_by_state([generated_batch.pk]) == stock_before
    # and counting the rows leaves them out too: counts by state add up to the size
    assert counted_stock_by_state(generated_batch.pk) == {
        "available": 5, "reserved": 0, "issued": 0, "redeemed": 0, "void": 0}
    assert Code.objects.filter(batch=generated_batch, is_canary=True, state="void").count() == 3
    # and one event per canary, by the staff member, without the code
    events = CodeEvent.objects.filter(action="canary_planted")
    assert sorted(e.code_id for e in events) == sorted(r.pk for r in rows)
    assert {(e.actor, e.from_state, e.to_state, str(e.details)) for e in events} == {
        (f"user:{staff_user.pk}", "", "void", "{}")}


def test_canaries_of_a_generated_batch_follow_its_format(product, staff_user):
    from vouchers.services.generation import generate_batch

    fmt = CodeFormat(prefix="GIFT", group=4, check_char=True)
    batch = generate_batch(product=product, count=2, fmt=fmt)
    plaintexts = plant_canaries(batch=batch, count=4, actor_user=staff_user)
    body = f"[{re.escape(fmt.alphabet)}]"
    length = fmt.length + 1  # with the check character
    groups = [4] * (length // 4) + ([length % 4] if length % 4 else [])
    pattern = "GIFT-" + "-".join(f"{body}{{{g}}}" for g in groups)
    assert all(re.fullmatch(pattern, p) for p in plaintexts), plaintexts


def test_canaries_of_an_imported_batch_imitate_its_codes(imported_batch, staff_user):
    plaintexts = plant_canaries(batch=imported_batch, count=5, actor_user=staff_user)
    assert all(re.fullmatch(r"GC-\d{4}-\d{4}-\d{4}-\d{4}", p) for p in plaintexts), plaintexts
    assert Code.objects.filter(batch=imported_batch, is_canary=True).count() == 5


@pytest.mark.parametrize("count", [0, MAX_CANARIES_PER_CALL + 1])
def test_a_count_out_of_range_is_refused_and_plants_nothing(generated_batch, staff_user, count):
    codes_before = Code.objects.count()
    with pytest.raises(InvalidBatchSettings):
        plant_canaries(batch=generated_batch, count=count, actor_user=staff_user)
    assert Code.objects.count() == codes_before
    assert not CodeEvent.objects.filter(action="canary_planted").exists()


def test_a_void_batch_is_refused(generated_batch, staff_user):
    Batch.objects.filter(pk=generated_batch.pk).update(status=Batch.Status.VOID)
    generated_batch.refresh_from_db()
    with pytest.raises(InvalidBatchSettings):
        plant_canaries(batch=generated_batch, count=1, actor_user=staff_user)
    assert not Code.objects.filter(is_canary=True).exists()


def test_an_empty_imported_batch_has_nothing_to_imitate(product, staff_user):
    from vouchers.services.batches import start_batch

    batch = start_batch(product=product, source=Batch.Source.IMPORTED, case_sensitive=False,
                        valid_from=None, valid_until=None)
    with pytest.raises(InvalidBatchSettings, match="no codes to imitate"):
        plant_canaries(batch=batch, count=1, actor_user=staff_user)
    assert not Code.objects.filter(is_canary=True).exists()
