"""Generating batches: format, uniqueness, collisions redrawn, refusals change nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vouchers import codeformat, crypto
from vouchers.codeformat import CodeFormat
from vouchers.exceptions import InvalidBatchSettings
from vouchers.models import Batch, Code, CodeEvent, StockCounter
from vouchers.services.generation import generate_batch


def plaintexts(batch: Batch) -> list[str]:
    return [crypto.decrypt_code(c) for c in Code.objects.filter(batch=batch).order_by("pk")]


def test_generate_batch_stores_exactly_count_distinct_codes_in_the_requested_format(product):
    # given
    fmt = CodeFormat(prefix="GIFT", group=4, check_char=True)
    # when
    batch = generate_batch(product=product, count=50, fmt=fmt, reference="spring promo")
    # then
    codes = plaintexts(batch)
    assert batch.size == 50
    assert batch.source == Batch.Source.GENERATED
    assert batch.case_sensitive is False
    assert batch.reference == "spring promo"
    assert batch.format == {
        "length": 17, "alphabet": codeformat.UNAMBIGUOUS_ALPHABET, "prefix": "GIFT",
        "group": 4, "check_char": True,
    }
    assert len(codes) == len(set(codes)) == 50
    for code in codes:
        assert code.startswith("GIFT-")
        body_and_check = code.removeprefix("GIFT-").replace("-", "")
        assert len(body_and_check) == 18
        assert codeformat.has_valid_check_character(body_and_check, codeformat.UNAMBIGUOUS_ALPHABET)
    assert Code.objects.filter(batch=batch, state=Code.State.AVAILABLE).count() == 50
    assert CodeEvent.objects.filter(batch=batch, action="batch_generated").count() == 1


def test_generated_codes_are_looked_up_by_the_blind_index_of_their_normalised_form(product):
    batch = generate_batch(product=product, count=5, fmt=CodeFormat(group=5))
    for code in Code.objects.filter(batch=batch):
        normalised = codeformat.normalise(crypto.decrypt_code(code), case_sensitive=False)
        assert bytes(code.blind_index) == crypto.blind_index(normalised)
        assert code.last4 == normalised[-4:]


def test_a_collision_with_a_stored_code_or_within_the_run_is_redrawn_never_stored_twice(
    product, monkeypatch
):
    # given one stored code
    fmt = CodeFormat()
    first = generate_batch(product=product, count=1, fmt=fmt)
    existing = plaintexts(first)[0]
    fresh = [fmt.random_body() for _ in range(3)]
    # and a random source that first repeats the stored code, then one new code twice
    draws = iter([existing, fresh[0], fresh[0], fresh[1], fresh[2]])
    monkeypatch.setattr(CodeFormat, "random_body", lambda self: next(draws))
    # when three codes are generated
    second = generate_batch(product=product, count=3, fmt=fmt)
    # then exactly three new distinct codes are stored, the stored one is not duplicated
    assert second.size == 3
    assert sorted(plaintexts(second)) == sorted(fresh)
    assert Code.objects.count() == 4
    assert len(set(Code.objects.values_list("blind_index", flat=True))) == 4
    assert plaintexts(first) == [existing]
    event = CodeEvent.objects.get(batch=second, action="batch_generated")
    assert event.details["redraws"] == 2
    assert event.details["count"] == 3


def test_validity_window_is_stored_on_the_batch(product):
    start, end = datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 12, 31, tzinfo=UTC)
    batch = generate_batch(product=product, count=2, valid_from=start, valid_until=end)
    batch.refresh_from_db()
    assert (batch.valid_from, batch.valid_until) == (start, end)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 0}, "count must be between 1"),
        ({"count": 10_000_001}, "count must be between 1"),
        ({"count": 2, "fmt": CodeFormat(alphabet="0123456789", length=12)}, "billion random guesses"),
        (
            {
                "count": 1,
                "valid_from": datetime(2030, 1, 2, tzinfo=UTC),
                "valid_until": datetime(2030, 1, 1, tzinfo=UTC),
            },
            "ends before it starts",
        ),
    ],
)
def test_refused_settings_store_nothing(product, kwargs, message):
    # when
    with pytest.raises(InvalidBatchSettings, match=message):
        generate_batch(product=product, **kwargs)
    # then nothing of the attempt is left
    assert Batch.objects.count() == 0
    assert Code.objects.count() == 0
    assert StockCounter.objects.count() == 0
    assert CodeEvent.objects.count() == 0


def test_a_case_sensitive_alphabet_makes_a_case_sensitive_batch(product):
    batch = generate_batch(
        product=product, count=3, fmt=CodeFormat(alphabet="abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ")
    )
    assert batch.case_sensitive is True
    for code in Code.objects.filter(batch=batch):
        assert bytes(code.blind_index) == crypto.blind_index(crypto.decrypt_code(code))


def test_progress_is_reported_for_every_code(product):
    seen: list[int] = []
    generate_batch(product=product, count=7, progress=seen.append)
    assert sum(seen) == 7
