"""Faults under load: after each, the invariants hold and every 2xx a client got is stored.

Each test runs its own PostgreSQL, Redis, gunicorn (2 workers x 4 threads) and Celery
worker (see stack.py), sends a bounded number of requests from a few threads on
127.0.0.1, breaks one component in the middle, and then checks:
- `manage.py check_invariants` reports nothing;
- every issuance answered 201 is in the database, issued, holding exactly the codes the
  client was given;
- no answer was a 5xx other than what the fault explains.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

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
    # then a new worker gets the task again and finishes it
    stack.start_celery()
    wait_until("the batch voided", lambda: stack.pg.sql(
        f"SELECT status FROM vouchers_batch WHERE id = {batch_id}") == "void", timeout=90)
    assert status_at_kill == "active"  # the kill really interrupted it: nothing was half-done
    counts = stack.pg.sql(f"SELECT state, count(*) FROM vouchers_code WHERE batch_id = {batch_id} "
                          "AND NOT is_canary GROUP BY state ORDER BY state")
    assert counts == "void|20000"
    assert stack.pg.sql(f"SELECT count(*) FROM vouchers_codeevent WHERE batch_id = {batch_id} "
                        "AND action = 'voided'") == "20000"
    assert_consistent(stack, [])
