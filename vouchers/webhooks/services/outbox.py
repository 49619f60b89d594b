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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from vouchers.webhooks.events import EVENT_TYPES
from vouchers.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent

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
        event.payload = {"id": str(event.id), "type": event_type, "created_at": _iso(now), "data": body}
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


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


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
        data=lambda: issuance_data(issuance, list(codes)),
    )


def issuance_data(issuance, codes: list) -> dict:
    return {
        "issuance": {
            "id": str(issuance.pk), "status": issuance.status, "sku": issuance.product.sku,
            "quantity": issuance.quantity, "customer": issuance.customer, "order_ref": issuance.order_ref,
        },
        "codes": [{"id": code.pk, "last4": code.last4} for code in sorted(codes, key=lambda c: c.pk)],
    }


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
        data=lambda: redemption_data(redemption),
    )


def redemption_data(redemption) -> dict:
    code = redemption.code
    product = code.batch.product
    return {
        "redemption": {
            "id": str(redemption.pk), "order_ref": redemption.order_ref, "location": redemption.location,
            "redeemed_at": _iso(redemption.redeemed_at),
            "reversed_at": _iso(redemption.reversed_at) if redemption.reversed_at else None,
            "storefront_id": redemption.storefront_id, "partner_id": redemption.partner_id,
        },
        "code": {"id": code.pk, "last4": code.last4, "issuance_id": str(code.issuance_id)},
        "sku": product.sku, "face_value": str(product.face_value), "currency": product.currency,
    }


# Fraud event context fields a storefront may receive (never a code: events hold none).
FRAUD_ALERT_FIELDS = (
    "batch_id", "code_id", "code_last4", "action", "reason", "scope", "storefront_id", "partner_id",
    "customer", "reasons",
)


def fraud_alert(event) -> WebhookEvent | None:
    """A fraud event severe enough to alert the merchant: sent to every storefront of it.

    Throttled e-mail alerts still send their webhook (one per event, not per window).
    """
    if event.merchant_id is None or event.alert == "not_needed":
        return None
    return emit(
        "fraud.alert", owners=[("merchant", event.merchant_id)], merchant_id=event.merchant_id,
        data=lambda: {
            "fraud_event": {
                "id": event.pk, "kind": event.kind, "severity": event.severity, "decision": event.decision,
                "batch_id": event.batch_id,
                "context": {k: event.context[k] for k in FRAUD_ALERT_FIELDS if k in event.context},
            },
        },
    )
