"""With only the Celery broker unreachable, no API answer changes.

The broker is simulated down by pointing Celery at a closed port (the shared Redis keeps
running); the cache, rate limits and fraud counters still answer. The tests commit for
real (`transactional_db`), so the after-commit hooks run inside the request as they do
in production.
"""

from __future__ import annotations

import socket
import time

import pytest
from django.core import mail
from django.db import OperationalError

from fraud.models import FraudEvent
from fraud.services.alerts import pending_alert_ids
from fraud.tasks import send_pending_fraud_alerts
from tests.factories import StaffFactory
from tests.vouchers.api.conftest import make_shop
from vouchers.models import Code, CodeEvent
from vouchers.services.canaries import plant_canaries

pytestmark = pytest.mark.django_db(transaction=True)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reset_producers(app) -> None:
    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def broker_down():
    """Celery publishes to a port nothing listens on, with no retries (as a dead broker looks)."""
    from config.celery import app

    saved = {name: app.conf[name] for name in (
        "task_always_eager", "broker_url", "task_publish_retry", "broker_connection_timeout")}
    app.conf.update(task_always_eager=False, broker_url=f"redis://127.0.0.1:{_closed_port()}/0",
                    task_publish_retry=False, broker_connection_timeout=0.5)
    _reset_producers(app)
    yield
    app.conf.update(saved)
    _reset_producers(app)


def retry_while_locked(query):
    """Run `query`, waiting while the leak-report thread holds a table lock.

    The thread writes the event (and tries to queue its alert) on its own connection.
    SQLite's shared-cache test database then locks the whole table, and a reader fails
    at once with "table is locked" instead of waiting on the busy timeout.
    """
    for _ in range(200):
        try:
            return query()
        except OperationalError:
            time.sleep(0.05)
    return query()


def wait_for_event(kind: str) -> FraudEvent:
    """The leak event is written off the request by the process's leak-report thread."""
    for _ in range(200):
        event = retry_while_locked(lambda: FraudEvent.objects.filter(kind=kind).first())
        if event is not None:
            return event
        time.sleep(0.05)
    raise AssertionError(f"no {kind} event was written")


@pytest.fixture
def canary_shop():
    shop = make_shop(codes=3)
    staff = StaffFactory(merchant=shop.product.merchant)
    staff.user.email = "ops@merchant.example"
    staff.user.save()
    canary = plant_canaries(batch=shop.product.batches.get(), count=1, actor_user=staff.user)[0]
    return shop, canary


@pytest.mark.parametrize("how", ["check", "redeem"])
def test_a_canary_use_answers_unknown_code_while_the_broker_is_down(canary_shop, broker_down, how):
    shop, canary = canary_shop
    states_before = sorted(Code.objects.values_list("pk", "state"))
    events_before = CodeEvent.objects.count()
    # when the canary is used while the broker is down
    response = shop.client.check(canary) if how == "check" else shop.client.redeem(canary)
    # then the answer is the one a healthy service gives
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "unknown_code"
    # and nothing about the codes changed
    assert sorted(Code.objects.values_list("pk", "state")) == states_before
    assert CodeEvent.objects.count() == events_before
    # and the leak is recorded (by the fallback: the task could not be queued), its alert
    # pending, not lost
    event = wait_for_event("canary_use")
    assert FraudEvent.objects.filter(kind="canary_use").count() == 1
    assert (event.severity, event.alert) == ("critical", "pending")
    assert mail.outbox == []


def test_the_pending_alert_is_sent_once_the_broker_is_back(canary_shop, broker_down, settings, clock):
    shop, canary = canary_shop
    assert shop.client.check(canary).status_code == 404
    event = wait_for_event("canary_use")
    assert event.alert == "pending"
    # given the broker is back (tasks run in-process here) and the re-send job's delay passed
    from config.celery import app

    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    retry_while_locked(lambda: FraudEvent.objects.filter(pk=event.pk).update(
        created_at=event.created_at.replace(year=2000)))
    assert pending_alert_ids() == [event.pk]
    # when the periodic job runs
    assert send_pending_fraud_alerts() == 1
    # then the alert is mailed once and the event is no longer pending
    event.refresh_from_db()
    assert event.alert == "sent"
    assert [m.to for m in mail.outbox] == [["ops@merchant.example"]]
    assert pending_alert_ids() == []
