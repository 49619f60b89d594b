"""Property: whatever happens, every statement adds up, to the minor unit, and nothing is lost.

Random sequences of issuances, redemptions, reversals, closes, dispute resolutions and
payments, recorded out of time order (so some land after their period was closed),
across period boundaries: a Europe/Berlin week with the DST change of 29 March 2026
(167 hours long), an event exactly at a period's end, two partners, three currencies
(USD, JPY, KWD) and a price change between versions. Then everything is closed and:

- every statement's total = the sum of its lines = the value recomputed here from the
  events with an independent pricing rule;
- every entry is on exactly one statement, one whose period ends after it happened
  (earlier only as a late line pointing at the statement it corrects);
- opening = the previous statement's closing, periods contiguous.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from types import SimpleNamespace
from unittest import mock

import pytest
from django.db import transaction
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from partners.models import Agreement, LedgerEntry, Statement, StatementLine
from partners.services import ledger, statements
from partners.services.agreements import add_version
from tests.factories import MerchantFactory, PartnerFactory, ProductFactory

EXPONENT = {"USD": 2, "JPY": 0, "KWD": 3}
START = datetime(2026, 3, 20, tzinfo=UTC)
BERLIN_WEEK_END = datetime(2026, 3, 29, 22, 0, tzinfo=UTC)  # Monday 30 March 00:00 CEST
PRICE_CHANGE = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
END = datetime(2026, 4, 20, tzinfo=UTC)
SPAN_MINUTES = int((END - START).total_seconds() // 60)


def expected_price(face: Decimal, *, bps: int | None, unit: int | None, currency: str) -> int:
    if unit is not None:
        return unit
    scaled = face * bps / Decimal(10000) * (Decimal(10) ** EXPONENT[currency])
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def build_world():
    merchant = MerchantFactory()
    usd = ProductFactory(merchant=merchant, face_value=Decimal("50.05"), currency="USD")
    jpy = ProductFactory(merchant=merchant, face_value=Decimal("1000.00"), currency="JPY")
    kwd = ProductFactory(merchant=merchant, face_value=Decimal("12.35"), currency="KWD")
    a, b = PartnerFactory(), PartnerFactory()
    since = datetime(2026, 1, 1, tzinfo=UTC)
    terms = []  # (agreement, product, basis, sign, [(from, until, bps, unit)])

    def agreement(partner, currency, period, tz, product, basis, versions, direction="merchant_pays_partner"):
        ag = Agreement.objects.create(
            merchant=merchant,
            partner=partner,
            currency=currency,
            period=period,
            timezone=tz,
            dispute_window_days=14,
        )
        for valid_from, valid_until, bps, unit in versions:
            add_version(
                agreement=ag,
                products=[product],
                basis=basis,
                direction=direction,
                valid_from=valid_from,
                valid_until=valid_until,
                rate_bps=bps,
                unit_amount_minor=unit,
            )
        terms.append((ag, product, basis, 1 if direction == "merchant_pays_partner" else -1, versions))

    agreement(
        a,
        "USD",
        "weekly",
        "Europe/Berlin",
        usd,
        "redeemed",
        [(since, PRICE_CHANGE, 250, None), (PRICE_CHANGE, None, 300, None)],
    )
    agreement(b, "USD", "monthly", "UTC", usd, "issued", [(since, None, None, 30)])
    agreement(a, "JPY", "weekly", "Europe/Berlin", jpy, "redeemed", [(since, None, 125, None)])
    agreement(
        b,
        "KWD",
        "weekly",
        "Asia/Tokyo",
        kwd,
        "redeemed",
        [(since, None, 333, None)],
        direction="partner_pays_merchant",
    )
    return SimpleNamespace(products=[usd, jpy, kwd], terms=terms)


def expected_for(world, product, basis: str, at: datetime) -> dict[int, int]:
    """{agreement id: signed amount} for one event, by the independent rule."""
    result = {}
    for ag, covered, ag_basis, sign, versions in world.terms:
        if covered.pk != product.pk or ag_basis != basis:
            continue
        for valid_from, valid_until, bps, unit in versions:
            if valid_from <= at and (valid_until is None or at < valid_until):
                result[ag.pk] = sign * expected_price(
                    product.face_value, bps=bps, unit=unit, currency=ag.currency
                )
    return result


moments = st.one_of(
    st.integers(min_value=0, max_value=SPAN_MINUTES).map(lambda m: START + timedelta(minutes=m)),
    st.sampled_from(
        [
            BERLIN_WEEK_END,
            BERLIN_WEEK_END - timedelta(microseconds=1),
            PRICE_CHANGE,
            datetime(2026, 4, 1, tzinfo=UTC),
        ]
    ),
)
operations = st.lists(
    st.tuples(
        st.sampled_from(["redeem", "redeem", "issue", "reverse", "close", "dispute", "payment"]),
        st.integers(min_value=0, max_value=2),
        moments,
    ),
    min_size=1,
    max_size=25,
)


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_every_statement_adds_up_and_every_entry_is_on_exactly_one(ops):
    savepoint = transaction.savepoint()
    try:
        run_and_check(ops)
    finally:
        transaction.savepoint_rollback(savepoint)


def run_and_check(ops):
    world = build_world()
    expected: dict[str, int] = {}  # source_key prefix (type:id) + agreement -> amount
    redemptions: list[tuple[SimpleNamespace, object]] = []
    for op, index, moment in ops:
        with mock.patch("django.utils.timezone.now", return_value=moment):
            product = world.products[index]
            if op == "redeem":
                redemption = SimpleNamespace(pk=uuid.uuid4(), redeemed_at=moment, reversed_at=None)
                ledger.record_redemption(redemption=redemption, product=product, code_last4="AB12")
                for ag_id, amount in expected_for(world, product, "redeemed", moment).items():
                    expected[f"redemption:{redemption.pk}:{ag_id}"] = amount
                redemptions.append((redemption, product))
            elif op == "issue":
                issuance, code = SimpleNamespace(pk=uuid.uuid4()), SimpleNamespace(pk=index + 1, last4="CD34")
                ledger.record_issuance(issuance=issuance, codes=[code], product=product, at=moment)
                for ag_id, amount in expected_for(world, product, "issued", moment).items():
                    expected[f"issued_code:{issuance.pk}:{code.pk}:{ag_id}"] = amount
            elif op == "reverse":
                live = [(r, p) for r, p in redemptions if r.reversed_at is None]
                if live:
                    redemption, product = live[index % len(live)]
                    redemption.reversed_at = max(moment, redemption.redeemed_at)
                    ledger.record_reversal(redemption=redemption)
                    for ag_id, amount in expected_for(
                        world, product, "redeemed", redemption.redeemed_at
                    ).items():
                        expected[f"redemption_reversal:{redemption.pk}:{ag_id}"] = -amount
            elif op == "close":
                statements.close_statements(as_of=moment, allow_future=True)
            elif op in ("dispute", "payment"):
                statement = Statement.objects.exclude(total_minor=0).order_by("-issued_at").first()
                if statement is None:
                    continue
                if op == "dispute":
                    if statements.lifecycle_status(statement) not in ("issued", "disputed", "resolved"):
                        continue
                    dispute = statements.open_dispute(
                        statement=statement, reason="r", actor="partner:1", claimed_amount_minor=-(index + 1)
                    )
                    statements.resolve_dispute(dispute=dispute, accept=True, reason="ok", actor="user:1")
                    expected[f"dispute:{dispute.pk}:{statement.agreement_id}"] = -(index + 1)
                else:
                    entry = statements.record_payment(
                        statement=statement, amount_minor=index + 1, actor="user:1"
                    )
                    expected[f"payment:{entry.source_id}:{statement.agreement_id}"] = entry.amount_minor
    with mock.patch("django.utils.timezone.now", return_value=END + timedelta(days=40)):
        statements.close_statements(as_of=END + timedelta(days=40))

    # every entry priced as recomputed, and on exactly one statement
    entries = list(LedgerEntry.objects.filter(agreement__merchant=world.products[0].merchant))
    recorded = {f"{e.source_type}:{e.source_id}:{e.agreement_id}": e.amount_minor for e in entries}
    assert recorded == expected
    lines = {
        line.entry_id: line
        for line in StatementLine.objects.filter(entry__in=entries).select_related(
            "statement", "original_statement", "entry"
        )
    }
    assert set(lines) == {e.pk for e in entries}
    for line in lines.values():
        entry, statement = line.entry, line.statement
        assert entry.occurred_at < statement.period_end
        if entry.occurred_at < statement.period_start and entry.reverses_id is None:
            # a late entry points at the statement of its own period; an entry older than
            # the agreement's first statement has none to point at
            covering = Statement.objects.filter(
                agreement_id=entry.agreement_id, period_start__lte=entry.occurred_at,
                period_end__gt=entry.occurred_at,
            ).first()
            assert line.original_statement == covering

    # every statement adds up: total = sum of lines = recomputed; opening = previous closing
    for ag, *_ in world.terms:
        chain = list(Statement.objects.filter(agreement=ag).order_by("period_start"))
        previous = None
        for statement in chain:
            line_sum = StatementLine.objects.filter(statement=statement).aggregate(
                s=Sum("entry__amount_minor")
            )["s"]
            recomputed = sum(
                expected[f"{ln.entry.source_type}:{ln.entry.source_id}:{ag.pk}"]
                for ln in lines.values()
                if ln.statement_id == statement.pk
            )
            assert statement.total_minor == (line_sum or 0) == recomputed
            assert statement.closing_minor == statement.opening_minor + statement.total_minor
            body = json.loads(bytes(statement.document))
            assert body["statement"]["total_minor"] == sum(x["amount_minor"] for x in body["lines"])
            assert len(body["lines"]) == statement.line_count
            if previous is not None:
                assert statement.opening_minor == previous.closing_minor
                assert statement.period_start == previous.period_end
                assert body["previous_statement_sha256"] == previous.content_sha256
            previous = statement
        if ag.timezone == "Europe/Berlin" and chain:
            spans = {(s.period_start, s.period_end) for s in chain}
            dst_week = (datetime(2026, 3, 22, 23, tzinfo=UTC), BERLIN_WEEK_END)
            if dst_week[0] >= chain[0].period_start:
                assert dst_week in spans  # 167 hours: the week the clocks went forward
