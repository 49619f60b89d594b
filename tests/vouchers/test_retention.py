"""Retention: old records are purged in short batches; recent and still-needed ones stay."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from fraud.models import FraudEvent, RiskAssessment
from tests.vouchers.api.conftest import make_shop
from vouchers.models import IdempotencyRecord
from vouchers.services import retention
from vouchers.tasks import purge_expired_records
from vouchers.webhooks.models import WebhookDelivery, WebhookEvent
from vouchers.webhooks.services import endpoints, outbox

pytestmark = pytest.mark.django_db


def age(queryset, days: float) -> None:
    queryset.update(created_at=timezone.now() - timedelta(days=days))


def assessment(merchant, days: float) -> RiskAssessment:
    row = RiskAssessment.objects.create(merchant=merchant, action="redeem", outcome="allow", score=0)
    age(RiskAssessment.objects.filter(pk=row.pk), days)
    return row


def fraud_event(merchant, days: float, *, alert="sent", assessment=None) -> FraudEvent:
    row = FraudEvent.objects.create(merchant=merchant, severity="low", kind="lockout", alert=alert,
                                    assessment=assessment,
                                    alerted_at=timezone.now() if alert == "sent" else None)
    age(FraudEvent.objects.filter(pk=row.pk), days)
    return row


def idempotency_record(hours: float) -> IdempotencyRecord:
    row = IdempotencyRecord.objects.create(caller="storefront:1", key=str(uuid.uuid4()), fingerprint="f",
                                           state="done")
    IdempotencyRecord.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(hours=hours))
    return row


@pytest.fixture
def periods(settings):
    settings.IDEMPOTENCY_RETENTION_HOURS = 48
    settings.RETENTION_RISK_ASSESSMENT_DAYS = 90
    settings.RETENTION_FRAUD_EVENT_DAYS = 365
    settings.RETENTION_WEBHOOK_DELIVERY_DAYS = 30
    settings.RETENTION_BATCH_SIZE = 2
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    settings.WEBHOOK_REQUIRE_HTTPS = False


def test_each_kind_of_record_is_purged_after_its_period_and_no_sooner(periods):
    # given old and recent rows of each kind
    shop = make_shop(codes=0)
    merchant = shop.storefront.merchant
    old_assessments = [assessment(merchant, 91) for _ in range(3)]
    kept_by_event = assessment(merchant, 91)
    recent_assessment = assessment(merchant, 89)
    old_events = [fraud_event(merchant, 366) for _ in range(3)]
    pending_alert = fraud_event(merchant, 366, alert="pending")
    recent_event = fraud_event(merchant, 364, assessment=kept_by_event)
    old_records = [idempotency_record(49) for _ in range(3)]
    recent_record = idempotency_record(47)
    endpoints.create_endpoint(url="http://127.0.0.1:9/", events=["stock.low"], storefront=shop.storefront)
    outbox.forget_subscriptions()
    events = [outbox.emit("stock.low", owners=[("storefront", shop.storefront.pk)], merchant_id=None,
                          data=dict) for _ in range(4)]
    old_done, old_failed, old_pending, recent_done = (WebhookDelivery.objects.get(event=e) for e in events)
    WebhookDelivery.objects.filter(pk__in=[old_done.pk, recent_done.pk]).update(status="succeeded")
    WebhookDelivery.objects.filter(pk=old_failed.pk).update(status="failed")
    for delivery in (old_done, old_failed, old_pending):
        age(WebhookDelivery.objects.filter(pk=delivery.pk), 31)
        age(WebhookEvent.objects.filter(pk=delivery.event_id), 31)
    # when the beat task runs
    counts = purge_expired_records()
    # then exactly the old rows that nothing needs any more are gone
    assert counts == {"idempotency_records": 3, "webhook_deliveries": 2, "fraud_events": 3,
                      "risk_assessments": 3}
    kept_assessments = {kept_by_event.pk, recent_assessment.pk}
    assert set(RiskAssessment.objects.values_list("pk", flat=True)) == kept_assessments
    assert set(FraudEvent.objects.values_list("pk", flat=True)) == {pending_alert.pk, recent_event.pk}
    assert list(IdempotencyRecord.objects.values_list("pk", flat=True)) == [recent_record.pk]
    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {old_pending.pk, recent_done.pk}
    assert set(WebhookEvent.objects.values_list("pk", flat=True)) == {old_pending.event_id,
                                                                      recent_done.event_id}
    assert not any(RiskAssessment.objects.filter(pk=a.pk).exists() for a in old_assessments)
    assert not any(FraudEvent.objects.filter(pk=e.pk).exists() for e in old_events)
    assert not any(IdempotencyRecord.objects.filter(pk=r.pk).exists() for r in old_records)
    # and a second run finds nothing more
    assert purge_expired_records() == dict.fromkeys(counts, 0)


def test_a_purge_deletes_in_batches_of_the_configured_size(periods):
    for _ in range(5):
        idempotency_record(72)
    with CaptureQueriesContext(connection) as queries:
        purged = retention.purge_in_batches(IdempotencyRecord.objects.all(), batch_size=2)
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert purged == 5
    assert len(deletes) == 3  # 2 + 2 + 1 rows, each in its own transaction
    assert IdempotencyRecord.objects.count() == 0


def test_a_period_below_its_floor_is_raised_to_it(periods, settings):
    settings.IDEMPOTENCY_RETENTION_HOURS = 1
    kept = idempotency_record(23)
    assert retention.purge_idempotency_records() == 0
    assert IdempotencyRecord.objects.filter(pk=kept.pk).exists()
