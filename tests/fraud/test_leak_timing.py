"""A never-issued code costs the request what an unknown code costs: the leak work is deferred.

The time itself is measured in bench/leak_timing.py (BENCHMARKS.md), not here; here the
request's database queries and after-commit hooks are compared, and the deferred work
is checked to happen exactly once.
"""

from __future__ import annotations

import secrets

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fraud.models import FraudEvent
from fraud.services.leaks import record_leak_event
from tests.vouchers.api.conftest import make_shop
from vouchers.models import Code

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(db):
    return make_shop(codes=4)


def _check(shop, code, django_capture_on_commit_callbacks):
    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks() as hooks:
        response = shop.client.check(code, customer="someone")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_code"
    return [q["sql"].split()[0] for q in queries.captured_queries], hooks


def test_a_never_issued_code_runs_the_same_queries_as_an_unknown_one(
    shop, django_capture_on_commit_callbacks
):
    # the first requests of a process fill its in-process caches (the API key row is
    # loaded again once its cache version has been set): warm them before comparing
    for _ in range(2):
        _check(shop, secrets.token_hex(9).upper(), django_capture_on_commit_callbacks)
    unknown = secrets.token_hex(9).upper()
    unknown_sql, unknown_hooks = _check(shop, unknown, django_capture_on_commit_callbacks)
    in_stock = shop.plaintexts()[0]
    leak_sql, leak_hooks = _check(shop, in_stock, django_capture_on_commit_callbacks)
    # then the request itself did the same statements, and wrote no fraud event
    assert leak_sql == unknown_sql
    assert "INSERT" not in leak_sql
    assert FraudEvent.objects.count() == 0
    # and the leak's work waits in one after-commit hook (the unknown code has none)
    assert (len(unknown_hooks), len(leak_hooks)) == (0, 1)


def test_the_deferred_leak_report_writes_one_event_and_is_safe_twice(shop, eager_alerts, mailoutbox):
    in_stock = shop.plaintexts()[0]
    row = Code.objects.get(state="available", last4=in_stock.replace("-", "")[-4:])
    with eager_alerts():
        assert shop.client.check(in_stock, customer="insider").status_code == 404
    event = FraudEvent.objects.get(kind="unissued_code_use")
    assert (event.severity, event.batch_id, event.context["code_id"], event.context["customer"]) == (
        "high", row.batch_id, row.pk, "insider")
    # when the same task is delivered again (a worker died before acknowledging it)
    again = record_leak_event(kind="unissued_code_use", context=event.context, code_id=row.pk,
                              batch_id=row.batch_id)
    # then no second event
    assert again is None
    assert FraudEvent.objects.filter(kind="unissued_code_use").count() == 1
    assert in_stock not in str(event.context)
