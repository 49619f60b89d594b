"""Budgets: SQL statements and Redis round trips per request, exact, so a regression shows.

PostgreSQL with Redis (the production profile), committed transactions: BEGIN and
COMMIT are counted as statements (they are round trips too). The caches are warm
(the key, the merchant's rules and list presence are held in process under the
current versions), as on a server that has served a few requests.
"""

from __future__ import annotations

import os
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from partners.models import LedgerEntry, LedgerHead
from partners.services import ledger
from tests.partners.conftest import make_agreement
from tests.snapshots import world
from tests.vouchers.api.conftest import make_shop
from vouchers.models import IdempotencyRecord

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL"),
]


# Statements per request, BEGIN/COMMIT/ROLLBACK included. A write that can be priced
# for a partner pays no look-up of the agreement versions covering the product: they
# are held in process under the merchant's `agreements` version (none here, so nothing
# is appended). A reversal looks up the entries to negate (`LEDGER`).
LEDGER = 1
SQL = {
    # BEGIN, claim, code lookup, the redemption statement (which writes the allowing risk
    # assessment too), completion, COMMIT
    "redeem": 6,
    # BEGIN, claim, the stored record, COMMIT
    "replay": 4,
    # BEGIN, claim, lookup, redemption statement (no row, no assessment), the explaining
    # reads (code, batch, live redemption), ROLLBACK; then BEGIN, claim, completion, COMMIT
    "again": 12,
    # BEGIN, claim, lookup (no code), completion with the 404, COMMIT
    "unknown": 5,
    # code lookup, then the allowing risk assessment's one INSERT in autocommit (a check
    # changes no code: the decision is all it writes; was 4: BEGIN, INSERT, COMMIT)
    "check": 2,
    # BEGIN, claim, the product this storefront may sell (one query), the one issuance
    # statement (claim, issuance row, codes, counter shards, events, the allowing
    # assessment, the codes for the response), completion, COMMIT (was 16 on the
    # portable path)
    "issue": 6,
    # as issuance up to the issuance statement, which wrote nothing (the allowing
    # decision is written only with an issuance) and brought back the stock count, then
    # the refusal is stored in the same transaction: completion, COMMIT (was 15: two
    # transactions)
    "out_of_stock": 6,
    # a large quantity is held for review by the default rules: that decision and its
    # fraud event are not dropped, so the refusal rolls back (6) and is stored in a
    # transaction of its own (5)
    "out_of_stock_review": 11,
    # reserving is an issuance: the same one statement on PostgreSQL
    "reserve": 6,
    # BEGIN, claim, the one confirm statement (the issuance's conditional UPDATE, the
    # codes' move, counter shards, events, the codes for the response), completion,
    # COMMIT (was 12 on the portable path)
    "confirm": 5,
    # the same statement finds the issuance issued already and brings its codes for the
    # response (was 6)
    "confirm_again": 5,
    # BEGIN, claim, the one cancel statement (the issuance's conditional UPDATE, the
    # codes back to stock, counter shards, events), completion, COMMIT (was 11)
    "cancel": 5,
    # the cancel statement wrote nothing and read the issuance issued (a final status):
    # the refusal is stored in the same transaction, as nothing needs rolling back:
    # BEGIN, claim, statement, completion, COMMIT (was 8: rolled back, then stored in a
    # transaction of its own)
    "cancel_issued": 5,
    # BEGIN, claim, the one reversal statement (lock the caller's live redemption inside
    # its window, code UPDATE, redemption UPDATE, counter shards, event), completion,
    # COMMIT (was 10 on the portable path)
    "reverse": 5 + LEDGER,  # the ledger look-up: the entries to negate
    # the reversal statement wrote nothing, the portable path's lock explains the refusal
    # (already reversed), which rolls back and is stored in a transaction of its own
    "reverse_again": 9,
    # the storefront sells a restricted list?, page count, the page, stock of the page
    "products": 4,
    # a redemption of a product a partner agreement covers: the same, plus the ledger's
    # one statement (the chain head locked, the entry hashed and inserted, the head
    # moved), sent last, after the completion (was 2 statements, right after the
    # redemption statement)
    "redeem_covered": 6 + 1,
}


def measure(redis_round_trips, call):
    redis_round_trips.count, redis_round_trips.commands[:] = 0, []
    with CaptureQueriesContext(connection) as queries:
        response = call()
    return response.status_code, len(queries), redis_round_trips.count


@pytest.fixture
def warm(db):
    """A shop with issued codes, its caches warm (an issuance, two checks and a
    redemption served after the versions were first read)."""
    shop = make_shop(codes=10)
    shop.client.issue(shop.product.sku)  # finds no versions yet: creates them, caches nothing
    codes = [c["code"] for c in shop.client.issue(shop.product.sku, quantity=4).json()["codes"]]
    shop.client.check(codes[0])
    shop.client.check(codes[0])
    shop.client.redeem(codes[3])
    return shop, codes


def test_redemption_budget(warm, redis_round_trips):
    shop, codes = warm
    # success: claim, code lookup, the one redemption statement, completion
    assert measure(redis_round_trips, lambda: shop.client.post(
        "/api/v1/redemptions/", {"code": codes[1]}, idempotency_key="b-1")) == (201, SQL["redeem"], 1)
    before = world()
    # replay: claim, the stored record (and nothing else)
    assert measure(redis_round_trips, lambda: shop.client.post(
        "/api/v1/redemptions/", {"code": codes[1]}, idempotency_key="b-1")) == (201, SQL["replay"], 1)
    # already redeemed: rolled back, then the refusal stored under the key
    assert measure(redis_round_trips, lambda: shop.client.redeem(codes[1])) == (409, SQL["again"], 1)
    # unknown code: the miss is counted (lockouts, guessing alarm) in one more round trip
    assert measure(redis_round_trips, lambda: shop.client.redeem("NOPE-NOPE-NOPE")) == (
        404, SQL["unknown"], 2)
    assert world() == before


def test_check_issue_and_products_budgets(warm, redis_round_trips):
    shop, codes = warm
    assert measure(redis_round_trips, lambda: shop.client.check(codes[2])) == (200, SQL["check"], 1)
    assert measure(redis_round_trips, lambda: shop.client.issue(shop.product.sku)) == (201, SQL["issue"], 1)
    assert measure(redis_round_trips, lambda: shop.client.issue(shop.product.sku, quantity=2)) == (
        201, SQL["issue"], 1)
    records = IdempotencyRecord.objects.count()
    before = world()
    assert measure(redis_round_trips, lambda: shop.client.issue(shop.product.sku, quantity=4)) == (
        409, SQL["out_of_stock"], 1)
    assert measure(redis_round_trips, lambda: shop.client.issue(shop.product.sku, quantity=9)) == (
        409, SQL["out_of_stock_review"], 1)
    assert IdempotencyRecord.objects.count() == records + 2
    assert world() == before
    assert measure(redis_round_trips, lambda: shop.client.get("/api/v1/products/")) == (
        200, SQL["products"], 1)


def test_reservation_confirm_and_cancel_budgets(warm, redis_round_trips):
    shop, _ = warm
    held = shop.client.issue(shop.product.sku, reserve=True).json()["id"]
    other = shop.client.issue(shop.product.sku, reserve=True).json()["id"]
    # reserving is an issuance: the same one statement on PostgreSQL
    assert measure(redis_round_trips, lambda: shop.client.issue(shop.product.sku, reserve=True)) == (
        201, SQL["reserve"], 1)
    assert measure(redis_round_trips, lambda: shop.client.confirm(held)) == (200, SQL["confirm"], 1)
    before = world()
    # confirming again answers the issued issuance and changes nothing
    assert measure(redis_round_trips, lambda: shop.client.confirm(held)) == (200, SQL["confirm_again"], 1)
    # cancelling an issued one is refused and changes nothing
    assert measure(redis_round_trips, lambda: shop.client.cancel(held)) == (409, SQL["cancel_issued"], 1)
    assert world() == before
    assert measure(redis_round_trips, lambda: shop.client.cancel(other)) == (200, SQL["cancel"], 1)


def test_reversal_budget(warm, redis_round_trips):
    shop, codes = warm
    redemption = shop.client.redeem(codes[1]).json()["id"]
    assert measure(redis_round_trips, lambda: shop.client.reverse(redemption)) == (200, SQL["reverse"], 1)
    before = world()
    # reversing twice is refused (rolled back, the refusal stored apart) and changes nothing
    assert measure(redis_round_trips, lambda: shop.client.reverse(redemption)) == (
        409, SQL["reverse_again"], 1)
    assert world() == before


def test_covered_redemption_budget(db, redis_round_trips):
    # given a shop whose product a partner agreement covers, its caches warm
    shop = make_shop(codes=10)
    agreement = make_agreement(merchant=shop.storefront.merchant, products=[shop.product])
    codes = [c["code"] for c in shop.client.issue(shop.product.sku, quantity=4).json()["codes"]]
    shop.client.check(codes[0])
    shop.client.redeem(codes[3])
    # when a code is redeemed
    redis_round_trips.count = 0
    with CaptureQueriesContext(connection) as queries:
        response = shop.client.redeem(codes[1])
    # then one statement more than an uncovered redemption, the ledger's, sent after the
    # idempotency completion, just before COMMIT: the chain head is locked only from
    # there to COMMIT
    assert (response.status_code, len(queries), redis_round_trips.count) == (201, SQL["redeem_covered"], 1)
    sent = [q["sql"] for q in queries]
    assert IdempotencyRecord._meta.db_table in sent[-3] and sent[-1] == "COMMIT"
    assert LedgerHead.objects.get(pk=agreement.partner_id).seq == 2
    entry = LedgerEntry.objects.get(source_id=response.json()["id"])
    assert (entry.seq, entry.amount_minor) == (2, 125)
    assert ledger.verify_chain(partner_id=agreement.partner_id) is None


def test_the_fast_path_statements_fit_psycopgs_parse_cache():
    """psycopg parses a statement's placeholders once only up to 4,096 bytes and 50
    parameters; a longer statement would be parsed again on every request."""
    from vouchers.fastpath import cancel, check, confirm, issue, redeem, reverse

    for statement in (issue._sql(), redeem._sql(), reverse._sql(), confirm._sql(), cancel._sql(),
                      check._sql()):
        assert len(statement.encode()) <= 4096
        assert len(set(re.findall(r"%\((\w+)\)s", statement))) <= 50
    # the ledger's append of one entry (a redemption one partner is paid for)
    assert len(ledger._chain_sql(1).encode()) <= 4096
    assert ledger._chain_sql(1).count("%s") <= 50


def _prepared_fast_paths() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_the_fast_path_statements_are_planned_once_per_connection(warm):
    shop, codes = warm
    # given the issuances, checks and redemption the warm-up served on this connection
    # then each fast path it used is a prepared statement of the connection, planned once
    prepared = _prepared_fast_paths()
    assert any("INSERT INTO vouchers_redemption" in sql for sql in prepared)
    assert any("INSERT INTO vouchers_issuance" in sql for sql in prepared)
    # and a second redemption reuses it instead of preparing another
    count = len(prepared)
    assert shop.client.redeem(codes[1]).status_code == 201
    assert len(_prepared_fast_paths()) == count


def test_fast_paths_are_not_prepared_when_turned_off(db, settings):
    # (behind a pooler that cannot keep prepared statements)
    settings.DB_PREPARE_FAST_PATHS = False
    connection.close()  # a fresh connection: nothing prepared on it yet
    shop = make_shop(codes=3)
    codes = [c["code"] for c in shop.client.issue(shop.product.sku, quantity=2).json()["codes"]]
    assert shop.client.redeem(codes[0]).status_code == 201
    assert _prepared_fast_paths() == []
