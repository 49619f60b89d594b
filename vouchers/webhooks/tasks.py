"""Webhook workers: send one delivery by id; sweep the due ones (beat). Safe to run twice."""

from __future__ import annotations

from celery import shared_task

from vouchers.webhooks.services import delivery


@shared_task(acks_late=True, ignore_result=True)
def deliver_webhook(delivery_id: int) -> str:
    """Send one delivery if it is due and not being sent; a second run finds it claimed or done."""
    return delivery.deliver(delivery_id).result


@shared_task(acks_late=True, ignore_result=True)
def dispatch_due_webhooks() -> int:
    """Queue every due delivery: retries whose back-off passed, and any the broker missed at commit."""
    ids = delivery.due_delivery_ids()
    for delivery_id in ids:
        deliver_webhook.delay(delivery_id)
    return len(ids)


@shared_task(acks_late=True, ignore_result=True)
def emit_stock_and_expiry_events() -> int:
    """Announce low stock and batches about to expire to subscribed storefronts (beat)."""
    from vouchers.webhooks.services import stock_events

    return stock_events.emit_stock_low() + stock_events.emit_codes_expiring()
