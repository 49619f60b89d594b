"""Background work of the fraud app: alerts, by event id, safe to run twice."""

from __future__ import annotations

from smtplib import SMTPException

from celery import shared_task

from fraud.services import alerts


@shared_task(
    acks_late=True, autoretry_for=(SMTPException, OSError), retry_backoff=True, retry_backoff_max=600,
    max_retries=8,
)
def send_fraud_alert(event_id: int) -> bool:
    """E-mail the merchant's staff about one fraud event; does nothing if already sent."""
    return alerts.deliver_alert(event_id=event_id)


@shared_task(acks_late=True)
def send_pending_fraud_alerts() -> int:
    """Re-queue alerts that were never delivered (schedule it with beat, e.g. every 5 minutes)."""
    ids = alerts.pending_alert_ids()
    for event_id in ids:
        send_fraud_alert.delay(event_id)
    return len(ids)


@shared_task(acks_late=True)
def record_leak_use(
    kind: str, context: dict, code_id: int, batch_id: int, occurred_at: float | None = None
) -> bool:
    """Write the leak event of one checked or redeemed never-issued or canary code; safe twice."""
    from fraud.services.leaks import record_leak_event

    return record_leak_event(kind=kind, context=context, code_id=code_id, batch_id=batch_id,
                             occurred_at=occurred_at) is not None
