"""Faults under load: after each, the invariants hold and every 2xx a client got is stored.

Each test runs its own PostgreSQL, Redis, gunicorn (2 workers x 4 threads) and Celery
worker (see stack.py), sends a bounded number of requests from a few threads on
127.0.0.1, breaks one component in the middle, and then checks:
- `manage.py check_invariants` reports nothing;
- every issuance answered 201 is in the database, issued, holding exactly the codes the
  client was given;
- no answer was a 5xx other than what the fault explains.
The statement close is checked the same way: after a worker is killed in the middle of
it and the close runs again, one statement holds every entry of the month, once.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import psycopg
import pytest

from tests.faults.stack import acknowledged_issuances_are_stored, load, wait_until

pytestmark = pytest.mark.faults


def statuses(outcomes) -> Counter:
    return Counter(o.status if o.status is not None else o.error for o in outcomes)


def assert_consistent(stack, outcomes) -> None:
    report = stack.invariants()
    assert report.returncode == 0, report.stderr
    stored = acknowledged_issuances_are_stored(stack, outcomes)
    assert stored["missing"] == []
    assert stored["checked"] == sum(1 for o in outcomes if o.status == 201)


def in_background(fn, *args, **kwargs) -> tuple[threading.Thread, list]:
    result: list = []
    thread = threading.Thread(target=lambda: result.extend(fn(*args, **kwargs)))
    thread.start()
    return thread, result


def test_kill_9_a_gunicorn_worker_during_a_flash_sale(stack):
    # given the service and a flash sale: 6 clients x 45 attempts for 200 codes
    stack.start_gunicorn()
    key, sku = stack.demo["storefront_api_key"], stack.demo["skus"][0]
    thread, outcomes = in_background(load, stack, api_key=key, sku=sku, clients=6, requests_each=45,
                                     retries=40)
    # when one worker is killed with SIGKILL in the middle of it
    time.sleep(2.0)
    os.kill(stack.gunicorn_workers()[0], signal.SIGKILL)
    thread.join()
    # then the sale sold each code at most once and every success is stored
    seen = statuses(outcomes)
    # (clients ask again with the same Idempotency-Key when the answer was lost with the worker)
    assert set(seen) <= {201, 409}, seen
    assert seen[201] == 200  # exactly the stock: no double sale, no code lost by the crash
    assert_consistent(stack, outcomes)


def test_restart_redis_during_load_fails_closed_then_recovers(stack):
    stack.start_gunicorn()
    key, sku = stack.demo["storefront_api_key"], stack.demo["skus"][1]
    thread, outcomes = in_background(load, stack, api_key=key, sku=sku, clients=4, requests_each=30,
                                     pause=0.05)
    time.sleep(1.0)
    stack.stop_redis()
    time.sleep(2.0)
    stack.start_redis()
    thread.join()
    seen = statuses(outcomes)
    # then requests during the outage were refused (rate limiter 503, fraud checks 429), never waved through
    assert set(seen) <= {201, 409, 429, 503}, seen
    assert seen[503] + seen[429] > 0
    # and the service recovers by itself
    after = stack.issue(key, sku)
    assert after.status == 201, after
    assert_consistent(stack, [*outcomes, after])


def test_restart_postgresql_during_load_then_recovers(stack):
    stack.start_gunicorn()
    key, sku = stack.demo["storefront_api_key"], stack.demo["skus"][2]
    thread, outcomes = in_background(load, stack, api_key=key, sku=sku, clients=4, requests_each=30,
                                     pause=0.05)
    time.sleep(1.0)
    stack.pg.stop("immediate")  # as a crash: no checkpoint, connections cut
    time.sleep(1.0)
    stack.pg.start()
    thread.join()
    seen = statuses(outcomes)
    assert set(seen) <= {201, 409, 500, 503}, seen
    after = wait_until("a successful issuance after the restart",
                       lambda: (o := stack.issue(key, sku)).status == 201 and o, timeout=30)
    assert_consistent(stack, [*outcomes, after])


VOID_SCRIPT = """
from vouchers.models import Batch, Product
from vouchers.services.generation import generate_batch
from vouchers.tasks import void_batch_task
product = Product.objects.get(sku="{sku}")
batch = generate_batch(product=product, count={count})
void_batch_task.delay(batch_id=batch.pk, user_id=None, reason="fault test recall")
print(batch.pk)
"""


REQUEUE_VOID_SCRIPT = """
from vouchers.tasks import void_batch_task
void_batch_task.delay(batch_id={batch_id}, user_id=None, reason="fault test recall")
"""


def test_kill_9_the_celery_worker_during_a_large_void(stack):
    stack.start_celery()
    sku = stack.demo["skus"][0]
    # given a large batch whose void is queued
    out = stack.manage("shell", "-c", VOID_SCRIPT.format(sku=sku, count=20_000), timeout=300)
    batch_id = int(out.stdout.strip().splitlines()[-1])
    # when the worker is killed with SIGKILL while the void's UPDATE runs (or just after it took the task)
    wait_until("the void running", lambda: "moved" in stack.pg.sql(
        "SELECT query FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%WITH moved AS%'"),
        timeout=60, interval=0.05)
    stack.kill("celery", signal.SIGKILL)
    status_at_kill = stack.pg.sql(f"SELECT status FROM vouchers_batch WHERE id = {batch_id}")
    # then a new worker finishes it: the task comes back once the broker's visibility
    # timeout has run out, but when the transport restores it is not fixed, so after a
    # while the operator's retry (the same idempotent task, queued again) runs too;
    # whichever comes first voids the batch, the other finds nothing left to do
    stack.start_celery()

    def voided() -> bool:
        return stack.pg.sql(f"SELECT status FROM vouchers_batch WHERE id = {batch_id}") == "void"

    try:
        wait_until("the killed void redelivered", voided, timeout=30)
    except AssertionError:
        stack.manage("shell", "-c", REQUEUE_VOID_SCRIPT.format(batch_id=batch_id), timeout=120)
        wait_until("the batch voided", voided, timeout=90)
    assert status_at_kill == "active"  # the kill really interrupted it: nothing was half-done
    counts = stack.pg.sql(f"SELECT state, count(*) FROM vouchers_code WHERE batch_id = {batch_id} "
                          "AND NOT is_canary GROUP BY state ORDER BY state")
    assert counts == "void|20000"
    assert stack.pg.sql(f"SELECT count(*) FROM vouchers_codeevent WHERE batch_id = {batch_id} "
                        "AND action = 'voided'") == "20000"
    assert_consistent(stack, [])


LEDGER_SCRIPT = """
from datetime import timedelta
from django.db import transaction
from django.utils import timezone
from partners.models import Agreement, Partner
from partners.services import ledger
from partners.tasks import close_statements_daily
from vouchers.models import Merchant
merchant = Merchant.objects.order_by("pk").first()
partner = Partner.objects.create(name="Fault partner", slug="fault-partner")
agreement = Agreement.objects.create(merchant=merchant, partner=partner, currency="USD", period="monthly")
# last month, whatever today is: one period, due now
month = (timezone.now().replace(day=1, hour=12, minute=0, second=0, microsecond=0) - timedelta(days=20))
for chunk in range({count} // 5000):
    with transaction.atomic():
        ledger.append(ledger.PendingEntry(
            partner_id=partner.pk, merchant_id=merchant.pk, agreement_id=agreement.pk, kind="adjustment",
            currency="USD", amount_minor=100 + n % 7, source_type="fault_test", source_id=str(n),
            source_key=f"fault:{{n}}", occurred_at=month + timedelta(seconds=n))
            for n in range(chunk * 5000, (chunk + 1) * 5000))
close_statements_daily.delay()
print(agreement.pk)
"""

CLOSE_RUNNING = ("SELECT count(*) FROM pg_locks WHERE relation = 'partners_statementline'::regclass "
                 "AND mode = 'RowExclusiveLock'")


def test_kill_9_the_celery_worker_during_a_statement_close(stack):
    stack.start_celery()
    # A close of 20,000 entries takes well under a second, too short a window to hit by
    # polling: a session holding SHARE on the statements table stops it right before it
    # writes the statement row, its lines inserted and nothing committed.
    blocker = psycopg.connect(stack.pg.url())
    blocker.execute("LOCK TABLE partners_statement IN SHARE MODE")
    try:
        # given a month of 20,000 ledger entries of one agreement, and the daily close queued
        out = stack.manage("shell", "-c", LEDGER_SCRIPT.format(count=20_000), timeout=300)
        agreement = int(out.stdout.strip().splitlines()[-1])
        # when the worker is killed with SIGKILL while the close has lines written but not committed
        wait_until("the close running", lambda: stack.pg.sql(CLOSE_RUNNING) != "0", timeout=60, interval=0.05)
        stack.kill("celery", signal.SIGKILL)
    finally:
        blocker.rollback()  # the killed close's backend gets the table, finds its client gone
        blocker.close()
    statements_of = f"SELECT count(*) FROM partners_statement WHERE agreement_id = {agreement}"
    wait_until("the killed close rolled back", lambda: stack.pg.sql(CLOSE_RUNNING) == "0", timeout=30)
    at_kill = (stack.pg.sql(statements_of), stack.pg.sql("SELECT count(*) FROM partners_statementline l "
               f"JOIN partners_ledgerentry e ON e.id = l.entry_id WHERE e.agreement_id = {agreement}"))
    assert at_kill == ("0", "0")  # the kill really interrupted it: nothing was half-done
    # then the close runs again: a new worker gets the task back (after the visibility timeout)
    # while an operator runs the command; the agreement's lock lets one of them close the month
    stack.start_celery()
    again = stack.manage("close_statements")
    assert again.returncode == 0, again.stderr
    assert stack.pg.sql(statements_of) == "1"
    total = stack.pg.sql(f"SELECT count(*), sum(amount_minor) FROM partners_ledgerentry "
                         f"WHERE agreement_id = {agreement}")
    assert total == f"20000|{sum(100 + n % 7 for n in range(20_000))}"
    statement = stack.pg.sql(f"SELECT line_count || '|' || total_minor FROM partners_statement "
                             f"WHERE agreement_id = {agreement}")
    assert statement == total
    # every entry is on exactly one statement, and no period has two statements
    assert stack.pg.sql("SELECT count(*) FROM partners_ledgerentry e WHERE (SELECT count(*) FROM "
                        "partners_statementline l WHERE l.entry_id = e.id) <> 1 "
                        f"AND e.agreement_id = {agreement}") == "0"
    assert stack.pg.sql("SELECT count(*) FROM (SELECT 1 FROM partners_statement GROUP BY agreement_id, "
                        "period_start HAVING count(*) > 1) d") == "0"
    assert_consistent(stack, [])
