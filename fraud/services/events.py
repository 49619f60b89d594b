"""Writing fraud events and queueing their alerts."""

from __future__ import annotations

import logging

from django.db import transaction

from fraud import clock, conf, counters, signals
from fraud.exceptions import RiskCheckUnavailable
from fraud.models import FraudEvent

logger = logging.getLogger("fraud.events")

# Keys that could carry a secret code. A caller passing one is a bug, refused loudly.
FORBIDDEN_CONTEXT_KEYS = frozenset({"code", "codes", "plaintext", "raw", "raw_code", "display"})


def should_alert(severity: str) -> bool:
    rank = FraudEvent.SEVERITY_RANK
    return rank[severity] >= rank[conf.get("FRAUD_ALERT_MIN_SEVERITY")]


def record_fraud_event(
    *,
    merchant_id: int | None,
    severity: str,
    kind: str,
    context: dict,
    decision: str = FraudEvent.Decision.NONE,
    assessment_id: int | None = None,
    batch_id: int | None = None,
    alert_throttle: str | None = None,
    occurred_at: float | None = None,
) -> FraudEvent:
    """Store one event in the caller's transaction; alert after commit if severe enough.

    Announced in the same transaction (`fraud.signals.fraud_event_recorded`): the webhook
    outbox writes the merchant's `fraud.alert` from it.

    With `alert_throttle`, at most one alert per (merchant, kind, throttle subject) is
    sent per FRAUD_ALERT_THROTTLE_SECONDS; every event is still recorded. If the
    throttle store is down the alert is sent (more mail beats a missed leak).
    `occurred_at` (fraud clock seconds) places a deferred event in the throttle period
    of the attempt that caused it, not of the moment it is written.
    Raises ValueError if the context has a key that could hold a code.
    """
    bad = FORBIDDEN_CONTEXT_KEYS & set(context)
    if bad:
        raise ValueError(f"fraud event context may not contain {sorted(bad)}")
    alert = FraudEvent.Alert.NOT_NEEDED
    if should_alert(severity):
        claimed = _claim_alert(merchant_id, kind, alert_throttle, occurred_at)
        alert = FraudEvent.Alert.PENDING if claimed else FraudEvent.Alert.THROTTLED
    with transaction.atomic(savepoint=False):
        event = FraudEvent.objects.create(
            merchant_id=merchant_id, severity=severity, kind=kind, decision=decision,
            context=context, assessment_id=assessment_id, batch_id=batch_id, alert=alert,
        )
        signals.fraud_event_recorded.send(sender=FraudEvent, event=event)
    if alert == FraudEvent.Alert.PENDING:
        queue_alert_after_commit(event.pk)
    return event


def queue_alert_after_commit(event_id: int) -> None:
    """Queue the alert task once the event is committed; a broker outage never fails the request.

    robust: an error publishing the task is logged, not raised into the request, and the
    event stays `pending` for send_pending_fraud_alerts to re-queue. The callback is a
    named function, not a functools.partial: Django's robust handler logs the callback's
    `__qualname__`, which a partial lacks (the log call itself would then raise).
    """
    from fraud.tasks import send_fraud_alert

    def send_fraud_alert_after_commit() -> None:
        send_fraud_alert.delay(event_id)

    transaction.on_commit(send_fraud_alert_after_commit, robust=True)


def _claim_alert(merchant_id: int | None, kind: str, throttle: str | None, at: float | None) -> bool:
    if throttle is None:
        return True
    period = int(conf.get("FRAUD_ALERT_THROTTLE_SECONDS"))
    slot = int((clock.now() if at is None else at) // period)
    key = counters.subject_key("alert", merchant_id, kind, throttle, slot)
    try:
        return counters.add_value(key, 1, ttl=2 * period)
    except RiskCheckUnavailable:
        logger.warning("alert throttle unavailable; alerting without it")
        return True
