"""check_invariants on settlement: quiet on statements the close built, loud on a ledger or
statement corrupted behind the services' back (rows INSERTed directly: the append-only
triggers refuse UPDATE and DELETE, not INSERT)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.db import connection

from partners.models import LedgerEntry, LedgerHead, Statement, StatementLine
from partners.services import statements
from partners.services.ledger import entry_hash, verify_chain
from tests.partners.conftest import make_agreement
from tests.vouchers.api.conftest import make_shop
from vouchers.ops.invariants import check_settlement_ledger, run_checks

pytestmark = pytest.mark.django_db

JAN_10 = datetime(2026, 1, 10, 12, tzinfo=UTC)
FEB_10 = datetime(2026, 2, 10, 12, tzinfo=UTC)
FEB_1 = datetime(2026, 2, 1, 0, 5, tzinfo=UTC)
MAR_1 = datetime(2026, 3, 1, 0, 5, tzinfo=UTC)


def at(moment: datetime):
    return mock.patch("django.utils.timezone.now", return_value=moment)


def close(moment: datetime) -> list[Statement]:
    with at(moment):
        return statements.close_statements(as_of=moment)


@pytest.fixture
def settled(db):
    """Two closed months of a partner honouring a shop's product at 1.25 USD per redemption:
    three redemptions in January, one of them reversed the same day, one more in February."""
    shop = make_shop(codes=6)
    shop.agreement = make_agreement(
        merchant=shop.storefront.merchant, products=[shop.product], unit_amount_minor=125,
        valid_from=datetime(2025, 12, 1, tzinfo=UTC),
    )
    codes = [c["code"] for c in shop.client.issue(shop.product.sku, quantity=5).json()["codes"]]
    with at(JAN_10):
        redemptions = [shop.client.redeem(code).json()["id"] for code in codes[:3]]
        assert shop.client.reverse(redemptions[0]).status_code == 200
    close(FEB_1)
    with at(FEB_10):
        assert shop.client.redeem(codes[3]).status_code == 201
    close(MAR_1)
    shop.codes = codes
    return shop


def details(violations) -> list[str]:
    return [v.detail for v in violations if v.check == "settlement_ledger"]


def insert_entry(like: LedgerEntry, *, chained: bool = False, **fields) -> LedgerEntry:
    """A ledger entry INSERTed directly, bypassing the ledger service (its head does not move);
    `chained` links and hashes it as the next entry of the partner's chain."""
    values = {f.attname: getattr(like, f.attname) for f in LedgerEntry._meta.concrete_fields}
    values.update(id=None, seq=like.seq + 1000, source_key=f"bogus:{uuid.uuid4()}", source_id="bogus")
    values.update(fields)
    entry = LedgerEntry(**values)
    if chained:
        entry.seq, entry.prev_hash = like.seq + 1, like.hash
        entry.hash = entry_hash(entry)
    LedgerEntry.objects.bulk_create([entry])
    return LedgerEntry.objects.get(source_key=values["source_key"])


def test_statements_the_close_built_satisfy_the_settlement_invariant(settled):
    # given two statements: January (3 x 1.25 and a reversal) and February (one more 1.25)
    january, february = Statement.objects.filter(agreement=settled.agreement).order_by("period_start")
    assert (january.total_minor, january.closing_minor, january.line_count) == (250, 250, 4)
    assert (february.opening_minor, february.total_minor, february.closing_minor) == (250, 125, 375)
    assert StatementLine.objects.count() == LedgerEntry.objects.count() == 5
    # then every check holds, the settlement one included
    assert check_settlement_ledger() == []
    assert run_checks() == []


def test_a_late_entry_waiting_for_the_next_close_is_not_reported(settled):
    # given a redemption recorded on 10 March (the open period): on no statement yet
    with at(datetime(2026, 3, 10, tzinfo=UTC)):
        assert settled.client.redeem(settled.codes[4]).status_code == 201
    assert LedgerEntry.objects.filter(line__isnull=True).count() == 1
    # then nothing is reported: its period is not closed
    assert check_settlement_ledger() == []


def test_a_bogus_line_on_a_closed_statement_is_reported(settled):
    january = Statement.objects.get(agreement=settled.agreement, number=1)
    with at(datetime(2026, 3, 10, tzinfo=UTC)):
        assert settled.client.redeem(settled.codes[4]).status_code == 201
    late = LedgerEntry.objects.get(line__isnull=True)
    # when a line for the March entry is INSERTed onto January's statement
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO partners_statementline (statement_id, entry_id, line_no) VALUES (%s, %s, %s)",
            [january.pk if connection.vendor == "postgresql" else january.pk.hex, late.pk, 5],
        )
    # then January no longer adds up, and its stored row is unchanged
    assert details(check_settlement_ledger()) == [
        f"statement {january.pk}: total 250 but its entries sum to 375; line_count 4 but 5 lines"
    ]
    assert Statement.objects.get(pk=january.pk).total_minor == 250


def test_an_entry_of_a_closed_period_slipped_in_behind_the_ledger_is_reported(settled):
    first = LedgerEntry.objects.order_by("seq").first()
    head_before = LedgerHead.objects.get(partner_id=first.partner_id).seq
    # when an entry dated in January is INSERTed directly, after both closes
    bogus = insert_entry(first, occurred_at=JAN_10, recorded_at=JAN_10)
    # then it is on no statement and it breaks its partner's hash chain
    assert verify_chain(partner_id=first.partner_id) == bogus.seq
    assert details(check_settlement_ledger()) == [
        f"entries of a closed period on no statement: {bogus.pk}",
        f"partner {first.partner_id}: hash chain broken at seq {bogus.seq}",
    ]
    assert LedgerHead.objects.get(partner_id=first.partner_id).seq == head_before == 5


def test_a_statement_that_does_not_chain_is_reported(settled):
    february = Statement.objects.get(agreement=settled.agreement, number=2)
    # when a third statement is INSERTed that forgets February: it opens at 0 and points at nothing
    values = {f.attname: getattr(february, f.attname) for f in Statement._meta.concrete_fields}
    bogus_id = uuid.uuid4()
    values.update(
        id=bogus_id, number=3, period_start=february.period_end,
        period_end=february.period_end + timedelta(days=31), opening_minor=0, total_minor=0,
        closing_minor=0, line_count=0, previous_id=None,
    )
    Statement.objects.bulk_create([Statement(**values)])
    # then the chain of statements is reported broken, and nothing else
    assert details(check_settlement_ledger()) == [
        f"statement {bogus_id}: opening 0 != previous closing 375; number 3 after 2, previous None "
        f"but {february.pk} precedes it"
    ]


def test_a_statement_whose_closing_is_not_opening_plus_total_is_reported(settled):
    february = Statement.objects.get(agreement=settled.agreement, number=2)
    values = {f.attname: getattr(february, f.attname) for f in Statement._meta.concrete_fields}
    bogus_id = uuid.uuid4()
    values.update(
        id=bogus_id, number=3, period_start=february.period_end,
        period_end=february.period_end + timedelta(days=31), opening_minor=375, total_minor=0,
        closing_minor=999, line_count=0, previous_id=february.pk,
    )
    Statement.objects.bulk_create([Statement(**values)])
    assert details(check_settlement_ledger()) == [
        f"statement {bogus_id}: closing 999 != opening 375 + total 0"
    ]


def test_an_entry_chained_without_moving_the_chain_head_is_reported(settled):
    last = LedgerEntry.objects.order_by("-seq").first()
    # when a well-chained entry of the open period is INSERTed without the ledger service
    bogus = insert_entry(last, chained=True, occurred_at=datetime(2026, 3, 10, tzinfo=UTC),
                         recorded_at=datetime(2026, 3, 10, tzinfo=UTC))
    # then the chain verifies, but its head still names the entry before it
    assert verify_chain(partner_id=last.partner_id) is None
    assert details(check_settlement_ledger()) == [
        f"partner {last.partner_id}: chain head at seq {last.seq} but the last entry is seq {bogus.seq}"
    ]
