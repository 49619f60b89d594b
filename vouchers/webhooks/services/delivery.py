"""Sending deliveries: signed, with a timeout, retried with back-off and jitter, then failed.

At least once: a delivery is marked succeeded only after a 2xx, so a worker that dies
mid-send leaves it pending and it is sent again (receivers deduplicate by
`Webhook-Id`). Ordered per endpoint where it matters: a delivery waits while an
older delivery to the same endpoint with the same ordering key (one issuance, one
code) is still pending, so a reversal never arrives before its redemption.

No database lock is held while a request is in flight: a worker claims a delivery
by setting a lease with a conditional UPDATE, and another worker skips it until the
lease passes.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta

from cryptography.exceptions import InvalidTag
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from config import metrics
from vouchers.crypto import UnknownKeyId
from vouchers.webhooks.models import WebhookDelivery, WebhookEndpoint
from vouchers.webhooks.services import addresses, secrets, transport

logger = logging.getLogger("webhooks.delivery")

USER_AGENT = "voucher-inventory-webhooks/1"
# An attempt's result as `vouchers_webhook_deliveries{outcome}` names it.
METRIC_OUTCOMES = {"succeeded": "delivered", "retry": "retry", "failed": "failed"}


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    result: str  # "succeeded", "retry", "failed", "waiting", "skipped"


def backoff_seconds(attempts: int) -> float:
    """Exponential back-off with jitter: base * 2^(n-1), capped, then 50-100 % of that."""
    delay = min(settings.WEBHOOK_RETRY_MAX_DELAY_SECONDS,
                settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0))
    return delay * (0.5 + random.random() / 2)


def _earlier_pending():
    return WebhookDelivery.objects.filter(
        endpoint_id=OuterRef("endpoint_id"), ordering_key=OuterRef("ordering_key"),
        status=WebhookDelivery.Status.PENDING, pk__lt=OuterRef("pk"),
    ).exclude(ordering_key="")


def due_delivery_ids(*, limit: int = 500) -> list[int]:
    """Pending deliveries whose time has come and that wait for no older one."""
    now = timezone.now()
    return list(
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .exclude(Exists(_earlier_pending()))
        .order_by("next_attempt_at", "pk").values_list("pk", flat=True)[:limit]
    )


def live_secrets(endpoint: WebhookEndpoint) -> list[str]:
    """The current secret, and during a rotation the previous one (two v1 signatures)."""
    found = [secrets.open_secret(
        ciphertext=endpoint.secret_ciphertext, nonce=endpoint.secret_nonce,
        key_id=endpoint.secret_key_id, endpoint_id=endpoint.pk,
    )]
    if endpoint.previous_secret_expires_at and endpoint.previous_secret_expires_at > timezone.now():
        found.append(secrets.open_secret(
            ciphertext=endpoint.previous_secret_ciphertext, nonce=endpoint.previous_secret_nonce,
            key_id=endpoint.previous_secret_key_id, endpoint_id=endpoint.pk,
        ))
    return found


def request_for(delivery: WebhookDelivery, *, timestamp: int) -> tuple[bytes, dict[str, str]]:
    """The exact body and headers of one attempt."""
    body = json.dumps(delivery.event.payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Webhook-Id": str(delivery.event_id),
        "Webhook-Signature": secrets.signature_header(live_secrets(delivery.endpoint), timestamp=timestamp,
                                                      body=body),
    }
    return body, headers


def deliver(delivery_id: int) -> Outcome:
    """Send one delivery if it is due, unclaimed and waits for no older one; record the answer."""
    now = timezone.now()
    lease = timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS * 2 + 30)
    claimed = (
        WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING,
                                       next_attempt_at__lte=now)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .exclude(Exists(_earlier_pending()))
        .update(lease_until=now + lease)
    )
    if not claimed:
        pending = WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING)
        waiting = pending.exists()
        return Outcome(delivery_id, "waiting" if waiting else "skipped")
    delivery = WebhookDelivery.objects.select_related("event", "endpoint").get(pk=delivery_id)
    status_code, error = _attempt(delivery)
    return _record(delivery, status_code=status_code, error=error)


def _attempt(delivery: WebhookDelivery) -> tuple[int | None, str]:
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        return None, "endpoint disabled"
    try:
        target = addresses.check_url(endpoint.url)
    except addresses.UnsafeEndpointURL as exc:
        return None, f"refused: {exc}"
    try:
        body, headers = request_for(delivery, timestamp=int(time.time()))
    except (UnknownKeyId, InvalidTag):
        # The key that sealed the secret left the key ring: rotate the endpoint's secret.
        logger.error("webhook endpoint %s: signing secret cannot be opened", endpoint.pk)
        return None, "signing secret cannot be opened (its key left VOUCHER_ENCRYPTION_KEYS)"
    try:
        answer = transport.post(target, body=body, headers=headers, timeout=settings.WEBHOOK_TIMEOUT_SECONDS)
    except (OSError, ValueError) as exc:  # timeouts, refused connections, TLS errors
        return None, f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= answer.status < 300:
        return answer.status, ""
    return answer.status, f"HTTP {answer.status}"


def _record(delivery: WebhookDelivery, *, status_code: int | None, error: str) -> Outcome:
    now = timezone.now()
    fields = {
        "attempts": delivery.attempts + 1, "last_attempt_at": now, "last_status_code": status_code,
        "last_error": error, "lease_until": None,
    }
    if not error:
        fields.update(status=WebhookDelivery.Status.SUCCEEDED, delivered_at=now)
        result = "succeeded"
    elif now >= delivery.retry_until:
        fields.update(status=WebhookDelivery.Status.FAILED)
        result = "failed"
    else:
        fields.update(next_attempt_at=now + timedelta(seconds=backoff_seconds(delivery.attempts + 1)))
        result = "retry"
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    metrics.WEBHOOK_DELIVERIES.labels(outcome=METRIC_OUTCOMES[result]).inc()
    if result == "failed":
        metrics.WEBHOOK_FAILURES.inc()
    logger.info("webhook delivery %s %s (attempt %s, status %s)", delivery.pk, result,
                fields["attempts"], status_code)
    if result != "retry" and delivery.ordering_key:
        _send_next_in_order(delivery)
    return Outcome(delivery.pk, result)


def _send_next_in_order(delivery: WebhookDelivery) -> None:
    following = (
        WebhookDelivery.objects.filter(
            endpoint_id=delivery.endpoint_id, ordering_key=delivery.ordering_key,
            status=WebhookDelivery.Status.PENDING, pk__gt=delivery.pk,
        ).order_by("pk").values_list("pk", flat=True).first()
    )
    if following is not None:
        from vouchers.webhooks.tasks import deliver_webhook

        transaction.on_commit(lambda: deliver_webhook.delay(following), robust=True)


def redeliver(delivery_ids: list[int]) -> int:
    """Send deliveries again now (the admin's "redeliver"): also succeeded or failed ones.

    The retry period starts again from now for a failed one. Returns how many were queued.
    """
    now = timezone.now()
    queued = list(WebhookDelivery.objects.filter(pk__in=delivery_ids).values_list("pk", flat=True))
    WebhookDelivery.objects.filter(pk__in=queued).update(
        status=WebhookDelivery.Status.PENDING, next_attempt_at=now, lease_until=None,
        retry_until=now + timedelta(seconds=settings.WEBHOOK_RETRY_FOR_SECONDS),
    )

    def send_after_commit() -> None:
        from vouchers.webhooks.tasks import deliver_webhook

        for delivery_id in queued:
            deliver_webhook.delay(delivery_id)

    transaction.on_commit(send_after_commit, robust=True)
    return len(queued)
