"""Writing webhook events in the caller's transaction (the outbox), cheaply.

`emit` is called by services inside the transaction of the change it reports. It
writes one `WebhookEvent` and one `WebhookDelivery` per subscribed, enabled endpoint,
and asks a worker to send them once the transaction commits (a broker outage is
logged, never raised: the beat task `dispatch_due_webhooks` sends what was missed).

Most owners subscribe to nothing, so the hot path asks a per-process cache of the
event types each owner subscribes to and returns before touching the database. The
cache holds an entry for `WEBHOOK_SUBSCRIPTION_CACHE_SECONDS` (so a new endpoint in
another process receives events at most that long after it was created) and is
cleared in this process whenever an endpoint changes here.

Every event goes through `emit`, the one builder: it decides who receives it, wraps
its data in the envelope (`envelope`) and writes the rows. Each event's data is built
by its function in `payloads`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from vouchers.webhooks.events import EVENT_TYPES
from vouchers.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from vouchers.webhooks.services import payloads

logger = logging.getLogger("webhooks.outbox")

# An owner of endpoints: ("storefront", id), ("partner", id), or ("merchant", id) for
# every storefront of a merchant (merchant-wide events: stock, expiry, fraud).
Owner = tuple[str, int]

# Keys that could carry a secret code as text; a payload holding one is a bug, refused
# loudly. (A code is named by an object of its id and last 4: {"code": {"id", "last4"}}.)
FORBIDDEN_KEYS = frozenset({"code", "plaintext", "raw", "raw_code", "display"})

_subscriptions: dict[Owner, tuple[float, frozenset[str]]] = {}


def forget_subscriptions() -> None:
    """Drop this process's cache (after an endpoint was created, changed or deleted here)."""
    _subscriptions.clear()


def _owner_q(owner: Owner) -> Q:
    kind, owner_id = owner
    if kind == "storefront":
        return Q(storefront_id=owner_id)
    if kind == "partner":
        return Q(partner_id=owner_id)
    if kind == "merchant":
        return Q(storefront__merchant_id=owner_id)
    raise ValueError(f"unknown endpoint owner kind {kind!r}")


def subscribed_types(owner: Owner) -> frozenset[str]:
    """Event types the owner's enabled endpoints receive (cached per process)."""
    now = time.monotonic()
    cached = _subscriptions.get(owner)
    if cached is not None and cached[0] > now:
        return cached[1]
    types: set[str] = set()
    rows = WebhookEndpoint.objects.filter(_owner_q(owner), enabled=True).values_list("events", flat=True)
    for events in rows:
        types.update(events)
    result = frozenset(types)
    _subscriptions[owner] = (now + settings.WEBHOOK_SUBSCRIPTION_CACHE_SECONDS, result)
    return result


def subscribed_merchants(event_type: str) -> list[int]:
    """Merchants with an enabled storefront endpoint subscribed to `event_type` (for the periodic scans)."""
    rows = WebhookEndpoint.objects.filter(enabled=True, storefront__isnull=False).values_list(
        "merchant_id", "events"
    )
    return sorted({merchant_id for merchant_id, events in rows if event_type in events})


def emit(
    event_type: str, *, owners: Iterable[Owner], merchant_id: int | None, data: Callable[[], dict],
    ordering_key: str = "",
) -> WebhookEvent | None:
    """Record one event for every endpoint of `owners` subscribed to it; None if there is none.

    `data` is called only when someone subscribes, so an unsubscribed owner costs no
    query and no payload building. Call it inside the transaction of the change.
    Raises ValueError for an unknown event type or a payload key that could hold a code.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    owners = [owner for owner in dict.fromkeys(owners) if owner[1] is not None]
    interested = [owner for owner in owners if event_type in subscribed_types(owner)]
    if not interested:
        return None
    condition = Q()
    for owner in interested:
        condition |= _owner_q(owner)
    endpoints = [
        endpoint for endpoint in WebhookEndpoint.objects.filter(condition, enabled=True).distinct()
        if event_type in endpoint.events
    ]
    if not endpoints:
        return None
    body = data()
    _refuse_code_keys(body)
    now = timezone.now()
    with transaction.atomic(savepoint=False):
        event = WebhookEvent(
            type=event_type, merchant_id=merchant_id or endpoints[0].merchant_id,
            ordering_key=ordering_key[:100],
        )
        event.payload = envelope(event, now, body)
        event.save(force_insert=True)
        deliveries = WebhookDelivery.objects.bulk_create([
            WebhookDelivery(
                event=event, endpoint=endpoint, merchant_id=endpoint.merchant_id,
                ordering_key=event.ordering_key, next_attempt_at=now,
                retry_until=now + timedelta(seconds=settings.WEBHOOK_RETRY_FOR_SECONDS),
            )
            for endpoint in endpoints
        ])
    ids = [delivery.pk for delivery in deliveries]

    def send_webhooks_after_commit() -> None:
        from vouchers.webhooks.tasks import deliver_webhook

        for delivery_id in ids:
            deliver_webhook.delay(delivery_id)

    transaction.on_commit(send_webhooks_after_commit, robust=True)
    return event


def envelope(event: WebhookEvent, now: datetime, data: dict) -> dict:
    """The body every event is sent as: its id (also the `Webhook-Id`), type, time and data."""
    return {"id": str(event.id), "type": event.type, "created_at": payloads.iso(now), "data": data}


def _refuse_code_keys(value) -> None:
    if isinstance(value, dict):
        bad = sorted(key for key in FORBIDDEN_KEYS & set(value) if isinstance(value[key], str))
        if bad:
            raise ValueError(f"webhook payloads may not hold text under {bad}")
        for item in value.values():
            _refuse_code_keys(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_code_keys(item)


# --- the events of the voucher services: one line at each call site ----------------
# (their `data` is built in `payloads`, with every other event's)

_ISSUANCE_EVENT_BY_STATUS = {
    "issued": "issuance.issued",
    "denied": "issuance.review_denied",
    "expired": "issuance.expired",
}


def issuance_changed(issuance, *, codes: Iterable = (), event_type: str | None = None) -> WebhookEvent | None:
    """An issuance reached a status its storefront may want to hear about.

    The event follows the status (issued, denied, expired; reserved, review and
    cancelled are answered synchronously and send nothing) unless `event_type` names
    it (a review's approval). Codes are named by id and last 4 only.
    """
    event_type = event_type or _ISSUANCE_EVENT_BY_STATUS.get(issuance.status)
    if event_type is None:
        return None
    return emit(
        event_type, owners=[("storefront", issuance.storefront_id)],
        merchant_id=None, ordering_key=f"issuance:{issuance.pk}",
        data=lambda: payloads.issuance_data(issuance, list(codes)),
    )


def redemption_changed(redemption, *, event_type: str) -> WebhookEvent | None:
    """A redemption was made or reversed: tell the redeeming storefront or partner.

    A partner's redemption is also sent to the storefront that issued the code (one
    query, off the storefront's hot path: a storefront usually redeems its own codes).
    """
    owners: list[Owner] = []
    if redemption.storefront_id:
        owners.append(("storefront", redemption.storefront_id))
    if redemption.partner_id:
        owners.append(("partner", redemption.partner_id))
        from vouchers.models import Issuance

        issuer = Issuance.objects.filter(pk=redemption.code.issuance_id).values_list(
            "storefront_id", flat=True
        )
        owners += [("storefront", storefront_id) for storefront_id in issuer]
    return emit(
        event_type, owners=owners, merchant_id=None, ordering_key=f"code:{redemption.code_id}",
        data=lambda: payloads.redemption_data(redemption),
    )


def fraud_alert(event) -> WebhookEvent | None:
    """A fraud event severe enough to alert the merchant: sent to every storefront of it.

    Throttled e-mail alerts still send their webhook (one per event, not per window).
    """
    if event.merchant_id is None or event.alert == "not_needed":
        return None
    return emit(
        "fraud.alert", owners=[("merchant", event.merchant_id)], merchant_id=event.merchant_id,
        data=lambda: payloads.fraud_alert_data(event),
    )
