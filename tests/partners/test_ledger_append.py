"""The ledger's append as the database does it: the hash frame, the one-statement chain
on PostgreSQL, and the append deferred to the last step before COMMIT."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import given
from hypothesis import strategies as st

from config import precommit
from partners.canonical import canonical
from partners.models import LedgerEntry, LedgerHead
from partners.services import ledger
from tests.partners.conftest import make_agreement
from tests.vouchers.api.conftest import make_shop

# Any string the database can hold: control characters, quotes, backslashes, non-ASCII,
# U+2028, but no surrogate (not UTF-8) and no NUL (PostgreSQL text refuses it).
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)
IDS = st.integers(min_value=1, max_value=2**53 - 1)
MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


def pending(**fields) -> ledger.PendingEntry:
    source_id = str(uuid.uuid4())
    values = {
        "partner_id": 1, "merchant_id": 2, "agreement_id": 3, "agreement_version_id": 4, "kind": "accrual",
        "currency": "USD", "amount_minor": 125, "source_type": "redemption", "source_id": source_id,
        "source_key": f"redemption:{source_id}:v4", "occurred_at": datetime(2026, 1, 10, 12, tzinfo=UTC),
        "sku": "SKU-1", "code_last4": "7KQ2", "actor": "storefront:1",
    }
    values.update(fields)
    return ledger.PendingEntry(**values)


@given(
    texts=st.fixed_dictionaries({
        name: TEXT
        for name in ("currency", "source_type", "source_id", "source_key", "sku", "code_last4", "memo")
    }),
    ids=st.tuples(IDS, IDS, IDS, st.none() | IDS, st.none() | IDS),
    amount=st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    statement=st.none() | st.uuids(),
    moments=st.tuples(MOMENTS, MOMENTS),
    seq=st.integers(min_value=1, max_value=2**53 - 1),
    prev_hash=st.text("0123456789abcdef", min_size=64, max_size=64),
)
def test_the_hash_frame_with_seq_and_prev_hash_in_place_is_the_canonical_json(
    texts, ids, amount, statement, moments, seq, prev_hash
):
    partner, merchant, agreement, version, reverses = ids
    occurred_at, recorded_at = moments
    item = pending(
        partner_id=partner, merchant_id=merchant, agreement_id=agreement, agreement_version_id=version,
        reverses_id=reverses, amount_minor=amount, refers_to_statement_id=statement, occurred_at=occurred_at,
        kind=LedgerEntry.Kind.ADJUSTMENT, **texts,
    )
    entry = LedgerEntry(
        partner_id=partner, merchant_id=merchant, agreement_id=agreement, agreement_version_id=version,
        reverses_id=reverses, amount_minor=amount, refers_to_statement_id=statement, occurred_at=occurred_at,
        recorded_at=recorded_at, kind=LedgerEntry.Kind.ADJUSTMENT, seq=seq, prev_hash=prev_hash, **texts,
    )
    before, between, after = ledger.hash_frame(item, recorded_at)
    assert (before + prev_hash + between + str(seq) + after).encode() == canonical(
        ledger.entry_hash_payload(entry)
    )


def test_an_amount_beyond_the_json_integer_range_is_refused_as_by_the_canonical_form():
    with pytest.raises(ValueError, match="safe integer"):
        ledger.hash_frame(pending(amount_minor=2**53), datetime(2026, 1, 1, tzinfo=UTC))


# --- PostgreSQL: one statement locks, hashes, inserts and moves the heads -------------


@pytest.mark.postgres
def test_a_fresh_append_chains_awkward_entries_in_the_database_as_verify_chain_does(db):
    # given two partners of one merchant's agreements, neither with a chain yet
    shop = make_shop(codes=0)
    merchant = shop.storefront.merchant
    first = make_agreement(merchant=merchant, products=[shop.product])
    second = make_agreement(merchant=merchant, products=[shop.product], currency="JPY")
    awkward = 'quote " back \\ tab \t nl \n bell \x07 del \x7f ü € 😀 \u2028'

    def one(agreement, **fields):
        version = agreement.versions.get()
        return pending(
            partner_id=agreement.partner_id, merchant_id=merchant.pk, agreement_id=agreement.pk,
            agreement_version_id=version.pk, currency=agreement.currency, **fields,
        )

    appends = [
        [one(first, memo=awkward), one(second, sku=awkward[:60])],
        [one(second, code_last4="\"\\\n\x01"), one(first)],
        [one(first, occurred_at=datetime(2026, 3, 29, 1, 30, 0, 123, tzinfo=UTC))],
    ]
    # when entries are appended fresh, one per partner, three times
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        created = [ledger.append(items, fresh=True) for items in appends][0]
    # then each append is one statement, run twice by the first (which creates the heads
    # in between)
    sent = [q["sql"] for q in queries if "SAVEPOINT" not in (q["sql"] or "")]
    assert len(sent) == 5 and "INSERT INTO \"partners_ledgerhead\"" in sent[1]
    # and the database's seq, links and hashes are the ones Python recomputes
    assert [(e.partner_id, e.seq, e.prev_hash) for e in created] == [
        (first.partner_id, 1, ledger.GENESIS_HASH), (second.partner_id, 1, ledger.GENESIS_HASH),
    ]
    for entry in created:
        assert entry.hash == ledger.entry_hash(LedgerEntry.objects.get(pk=entry.pk))
    for agreement, last in ((first, 3), (second, 2)):
        assert ledger.verify_chain(partner_id=agreement.partner_id) is None
        head = LedgerHead.objects.get(pk=agreement.partner_id)
        assert head.seq == last
        assert head.hash == LedgerEntry.objects.get(partner_id=agreement.partner_id, seq=last).hash
    assert LedgerEntry.objects.get(partner_id=first.partner_id, seq=1).memo == awkward


@pytest.mark.postgres
def test_a_fresh_append_of_a_source_already_priced_fails_and_writes_nothing(db):
    # given an entry already written for a source
    shop = make_shop(codes=0)
    agreement = make_agreement(merchant=shop.storefront.merchant, products=[shop.product])
    item = pending(
        partner_id=agreement.partner_id, merchant_id=agreement.merchant_id, agreement_id=agreement.pk,
        agreement_version_id=agreement.versions.get().pk,
    )
    with transaction.atomic():
        ledger.append([item], fresh=True)
    # when the same source is appended as fresh again (which a caller must never do)
    # then the unique source key refuses it and the chain is unchanged
    with pytest.raises(IntegrityError, match="source_key"), transaction.atomic():
        ledger.append([item], fresh=True)
    assert LedgerHead.objects.get(pk=agreement.partner_id).seq == 1
    assert ledger.verify_chain(partner_id=agreement.partner_id) is None


# --- the last step before COMMIT ------------------------------------------------------


def test_deferred_steps_run_in_order_at_the_end_of_the_block(db):
    done = []
    with transaction.atomic(), precommit.last_steps():
        assert precommit.defer(lambda: done.append(1))
        assert precommit.defer(lambda: done.append(2))
        done.append("body")
    assert done == ["body", 1, 2]


def test_deferred_steps_are_dropped_when_the_block_raises(db):
    done = []
    with pytest.raises(ZeroDivisionError), transaction.atomic(), precommit.last_steps():
        precommit.defer(lambda: done.append(1))
        _ = 1 / 0
    assert done == []
    assert precommit.defer(lambda: done.append(2)) is False  # the block is closed


def test_nothing_is_deferred_inside_a_savepoint_or_without_a_block(db):
    with transaction.atomic():
        assert precommit.defer(lambda: None) is False
        with precommit.last_steps(), transaction.atomic():
            assert precommit.defer(lambda: None) is False


def test_the_last_steps_need_a_transaction():
    with pytest.raises(RuntimeError, match="inside a transaction"), precommit.last_steps():
        pass


def test_a_redemption_priced_outside_a_request_is_written_at_once(covered_shop):
    # given a redemption made through the API (its entry written before COMMIT)
    code = covered_shop.client.issue(covered_shop.product.sku).json()["codes"][0]["code"]
    redemption_id = covered_shop.client.redeem(code).json()["id"]
    assert LedgerEntry.objects.filter(source_id=redemption_id).count() == 1
    # when the service prices a redemption outside any request (no last step open)
    from vouchers.models import Redemption

    redemption = Redemption.objects.get(pk=redemption_id)
    redemption.pk = uuid.uuid4()
    redemption.redeemed_at += timedelta(seconds=1)
    with transaction.atomic():
        written = ledger.record_redemption(
            redemption=redemption, product=covered_shop.product, code_last4="0000", fresh=True, last=True
        )
    # then the entries are written and returned at once, chained after the first
    assert [(e.seq, e.amount_minor) for e in written] == [(2, 125)]
    assert ledger.verify_chain(partner_id=covered_shop.agreement.partner_id) is None
