"""Retention: old records are deleted after configurable periods, in small batches.

Each batch is its own short transaction (select up to RETENTION_BATCH_SIZE ids, delete
them), so no purge holds locks for long or builds one huge transaction, and a purge
interrupted half way simply continues at the next run. Periods come from settings
(README "Retention"); each has a floor so a typo cannot purge live data.

- idempotency records: IDEMPOTENCY_RETENTION_HOURS (at least 24: the API promises a day);
- webhook deliveries that are no longer pending: RETENTION_WEBHOOK_DELIVERY_DAYS, and
  then their events once no delivery is left;
- fraud events whose alert is not still pending: RETENTION_FRAUD_EVENT_DAYS;
- risk assessments: RETENTION_RISK_ASSESSMENT_DAYS, except one a kept fraud event
  still points at.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from fraud.models import FraudEvent, RiskAssessment
from vouchers.models import IdempotencyRecord
from vouchers.webhooks.models import WebhookDelivery, WebhookEvent

logger = logging.getLogger("vouchers.retention")


def purge_in_batches(queryset: QuerySet, *, batch_size: int | None = None) -> int:
    """Delete every row of `queryset`, `batch_size` rows per transaction. Returns how many."""
    batch_size = batch_size or settings.RETENTION_BATCH_SIZE
    total = 0
    while True:
        with transaction.atomic():
            ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:batch_size])
            if ids:
                queryset.model._default_manager.filter(pk__in=ids).delete()
        total += len(ids)
        if len(ids) < batch_size:
            return total


def _days_ago(days: int, *, floor: int = 1):
    return timezone.now() - timedelta(days=max(days, floor))


def purge_idempotency_records() -> int:
    cutoff = timezone.now() - timedelta(hours=max(settings.IDEMPOTENCY_RETENTION_HOURS, 24))
    return purge_in_batches(IdempotencyRecord.objects.filter(created_at__lt=cutoff))


def purge_webhook_deliveries() -> int:
    cutoff = _days_ago(settings.RETENTION_WEBHOOK_DELIVERY_DAYS)
    deliveries = purge_in_batches(
        WebhookDelivery.objects.filter(created_at__lt=cutoff).exclude(status=WebhookDelivery.Status.PENDING)
    )
    purge_in_batches(
        WebhookEvent.objects.filter(created_at__lt=cutoff)
        .exclude(Exists(WebhookDelivery.objects.filter(event_id=OuterRef("pk"))))
    )
    return deliveries


def purge_fraud_events() -> int:
    cutoff = _days_ago(settings.RETENTION_FRAUD_EVENT_DAYS, floor=7)
    return purge_in_batches(
        FraudEvent.objects.filter(created_at__lt=cutoff).exclude(alert=FraudEvent.Alert.PENDING)
    )


def purge_risk_assessments() -> int:
    cutoff = _days_ago(settings.RETENTION_RISK_ASSESSMENT_DAYS, floor=7)
    return purge_in_batches(
        RiskAssessment.objects.filter(created_at__lt=cutoff)
        .exclude(Exists(FraudEvent.objects.filter(assessment_id=OuterRef("pk"))))
    )


def purge_expired_records() -> dict[str, int]:
    """Every purge, fraud events before the assessments they point at. Returns counts."""
    counts = {
        "idempotency_records": purge_idempotency_records(),
        "webhook_deliveries": purge_webhook_deliveries(),
        "fraud_events": purge_fraud_events(),
        "risk_assessments": purge_risk_assessments(),
    }
    logger.info("retention purge: %s", ", ".join(f"{k}={v}" for k, v in counts.items()), extra=counts)
    return counts
