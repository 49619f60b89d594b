"""Alert delivery: after commit, to the merchant's staff only, once per event."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from fraud.models import FraudEvent
from fraud.services.events import record_fraud_event
from fraud.tasks import send_fraud_alert, send_pending_fraud_alerts
from tests.factories import StaffFactory


def high_event(merchant, **kwargs) -> FraudEvent:
    return record_fraud_event(merchant_id=merchant.pk, severity="high", kind="unissued_code_use",
                              context={"batch_id": 1}, **kwargs)


def test_the_alert_goes_to_this_merchants_active_staff_only(merchant, eager_alerts, mailoutbox):
    # given staff of this merchant (one inactive, one without e-mail) and of another
    StaffFactory(merchant=merchant, user__email="b@merchant.example")
    StaffFactory(merchant=merchant, user__email="a@merchant.example")
    StaffFactory(merchant=merchant, user__email="gone@merchant.example", user__is_active=False)
    StaffFactory(merchant=merchant, user__email="")
    StaffFactory(user__email="someone@other.example")
    # when a high event is recorded and committed
    with eager_alerts():
        event = high_event(merchant)
    # then one mail to the two active addresses
    assert [sorted(m.to) for m in mailoutbox] == [["a@merchant.example", "b@merchant.example"]]
    event.refresh_from_db()
    assert event.alert == "sent"
    assert event.alerted_at is not None


def test_running_the_task_twice_sends_one_mail(merchant, eager_alerts, mailoutbox):
    StaffFactory(merchant=merchant)
    with eager_alerts():
        event = high_event(merchant)
    alerted_at = FraudEvent.objects.get(pk=event.pk).alerted_at
    assert send_fraud_alert(event.pk) is False
    assert len(mailoutbox) == 1
    assert FraudEvent.objects.get(pk=event.pk).alerted_at == alerted_at


def test_an_event_rolled_back_sends_nothing(merchant, eager_alerts, mailoutbox):
    StaffFactory(merchant=merchant)
    with eager_alerts(), pytest.raises(RuntimeError), transaction.atomic():
        high_event(merchant)
        raise RuntimeError("the caller's transaction fails")
    assert FraudEvent.objects.count() == 0
    assert mailoutbox == []


def test_low_events_are_not_alerted(merchant, eager_alerts, mailoutbox):
    StaffFactory(merchant=merchant)
    with eager_alerts():
        event = record_fraud_event(merchant_id=merchant.pk, severity="low", kind="lockout", context={})
    assert event.alert == "not_needed"
    assert mailoutbox == []


def test_an_event_without_a_merchant_goes_to_the_admins(db, settings, eager_alerts, mailoutbox):
    settings.ADMINS = [("Ops", "ops@service.example")]
    with eager_alerts():
        record_fraud_event(merchant_id=None, severity="critical", kind="canary_use", context={})
    assert [m.to for m in mailoutbox] == [["ops@service.example"]]


def test_an_event_with_no_one_to_tell_is_marked_sent_without_mail(merchant, eager_alerts, mailoutbox):
    with eager_alerts():
        event = high_event(merchant)
    event.refresh_from_db()
    assert (event.alert, mailoutbox) == ("sent", [])


def test_pending_alerts_left_behind_are_sent_by_the_sweeper(merchant, eager_alerts, mailoutbox):
    # given a pending alert whose task was never queued (broker down at commit)
    StaffFactory(merchant=merchant)
    event = high_event(merchant)  # on-commit callbacks are not run here
    FraudEvent.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    fresh = high_event(merchant)
    # when the sweeper runs
    with eager_alerts():
        queued = send_pending_fraud_alerts()
    # then only the old one is sent; the fresh one is left to its own task
    assert queued == 1
    assert len(mailoutbox) == 1
    assert FraudEvent.objects.get(pk=fresh.pk).alert == "pending"


def test_the_task_acknowledges_late():
    assert send_fraud_alert.acks_late is True


def test_a_context_with_a_code_field_is_refused(merchant):
    with pytest.raises(ValueError, match="code"):
        record_fraud_event(merchant_id=merchant.pk, severity="low", kind="lockout", context={"code": "x"})
    assert FraudEvent.objects.count() == 0
