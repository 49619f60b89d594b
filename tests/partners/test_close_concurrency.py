"""Closing runs twice at once while redemptions and reversals go on (PostgreSQL, threads)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Sum

from partners.models import LedgerEntry, Statement, StatementLine
from partners.services import statements
from tests.concurrency import run_concurrently
from tests.partners.conftest import make_agreement
from tests.vouchers.api.conftest import StorefrontClient, make_shop

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_closes_during_redemptions_lose_nothing_and_duplicate_nothing():
    # given a weekly agreement and 20 issued codes, 5 of them already redeemed
    shop = make_shop(codes=20)
    agreement = make_agreement(
        merchant=shop.storefront.merchant,
        products=[shop.product],
        period="weekly",
        valid_from=datetime.now(UTC) - timedelta(days=30),
    )
    codes = [
        c["code"]
        for i in range(4)
        for c in shop.client.issue(shop.product.sku, quantity=5, customer=f"c{i}").json()["codes"]
    ]
    redeemed = [
        shop.client.redeem(code, customer=f"early{i}").json()["id"] for i, code in enumerate(codes[:5])
    ]
    as_of = datetime.now(UTC) + timedelta(days=8)

    # when two closers run while 15 redemptions and 5 reversals happen
    def work(i):
        try:
            if i < 2:
                return len(statements.close_statements(as_of=as_of, allow_future=True))
            client = StorefrontClient(shop.client.key)
            if i < 17:
                return client.redeem(codes[5 + i - 2], customer=f"r{i}", ip=f"10.1.0.{i}").status_code
            return client.reverse(redeemed[i - 17]).status_code
        finally:
            connection.close()

    results = run_concurrently(work, tasks=22, workers=22)
    statements.close_statements(as_of=as_of + timedelta(days=7), allow_future=True)

    # then every event succeeded, every entry is on exactly one statement, none twice
    assert results[2:] == [201] * 15 + [200] * 5
    entries = LedgerEntry.objects.filter(agreement=agreement)
    assert entries.count() == 5 + 15 + 5
    assert StatementLine.objects.filter(entry__agreement=agreement).count() == entries.count()
    chain = list(Statement.objects.filter(agreement=agreement).order_by("period_start"))
    assert len({s.period_start for s in chain}) == len(chain)
    for previous, current in zip(chain, chain[1:], strict=False):
        assert current.period_start == previous.period_end
        assert current.opening_minor == previous.closing_minor
    for statement in chain:
        lines_sum = StatementLine.objects.filter(statement=statement).aggregate(s=Sum("entry__amount_minor"))[
            "s"
        ]
        assert statement.total_minor == (lines_sum or 0)
    assert chain[-1].closing_minor == 125 * 15  # 20 redemptions, 5 reversed
