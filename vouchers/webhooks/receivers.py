"""What the webhook outbox hears from the apps below vouchers (connected in `WebhooksConfig.ready`).

fraud does not import the outbox: it announces each event it writes
(`fraud.signals.fraud_event_recorded`, in the event's transaction) and the outbox
writes the merchant's `fraud.alert` from it, in the same transaction.
"""

from __future__ import annotations

from vouchers.webhooks.services import outbox


def fraud_event_recorded(sender, *, event, **kwargs) -> None:
    outbox.fraud_alert(event)
