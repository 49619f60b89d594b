"""Delivering a fraud alert by e-mail to the merchant's staff, exactly once per event.

Who the staff are and what the merchant is called come from the merchant directory
(`fraud.merchants`), registered by the app owning merchants.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from fraud import merchants
from fraud.models import FraudEvent

logger = logging.getLogger("fraud.alerts")

# Context fields worth a line in the mail, in this order (never a code: events hold none).
MAIL_FIELDS = (
    "batch_id", "code_id", "code_last4", "action", "reason", "scope", "failures", "lockout_seconds",
    "failures_in_window", "baseline_per_window", "distinct_sources", "window_seconds", "reasons",
    "customer", "ip", "device_id", "email", "storefront_id", "partner_id", "api_key_id",
)


def alert_recipients(event: FraudEvent) -> list[str]:
    """Active staff users of the event's merchant with an e-mail; ADMINS for no merchant."""
    if event.merchant_id is None:
        return [email for _name, email in getattr(settings, "ADMINS", [])]
    return merchants.directory().staff_emails(event.merchant_id)


def admin_event_url(event: FraudEvent) -> str:
    """The event's page in the admin, absolute (PUBLIC_BASE_URL: where staff reach the service)."""
    base = getattr(settings, "PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    return base + reverse("admin:fraud_fraudevent_change", args=[event.pk])


def merchant_label(event: FraudEvent) -> str:
    if event.merchant_id is None:
        return _("none (a caller of no known merchant)")
    return merchants.directory().label(event.merchant_id) or str(event.merchant_id)


def alert_language() -> str:
    """The language of alert e-mails (FRAUD_ALERT_LANGUAGE, else the default language)."""
    return getattr(settings, "FRAUD_ALERT_LANGUAGE", "") or settings.LANGUAGE_CODE


def render_alert(event: FraudEvent) -> tuple[str, str]:
    """Subject and body of an event's alert, in alert_language(); names codes by id and last 4 only."""
    with translation.override(alert_language()):
        return _render_alert(event)


def _render_alert(event: FraudEvent) -> tuple[str, str]:
    what = str(event.get_kind_display())
    batch = _(" in batch %(batch)s") % {"batch": event.batch_id} if event.batch_id else ""
    merchant = merchant_label(event)
    subject = _("[fraud %(severity)s] %(merchant)s: %(what)s%(batch)s") % {
        "severity": event.severity.upper(), "merchant": merchant, "what": what, "batch": batch}
    lines = [
        f"{what}{batch}.",
        "",
        _("Merchant: %(merchant)s") % {"merchant": merchant},
        _("Severity: %(severity)s") % {"severity": event.severity},
        _("When: %(when)s") % {"when": event.created_at.isoformat()},
        _("Event: #%(pk)s") % {"pk": event.pk},
    ]
    for name in MAIL_FIELDS:
        value = event.context.get(name)
        if value not in (None, "", []):
            lines.append(f"{name}: {value}")
    if event.kind == FraudEvent.Kind.CANARY_USE:
        lines += ["", _("A canary code is never sold: whoever used it has a copy of this batch's "
                        "codes. Consider pausing or voiding the batch.")]
    elif event.kind == FraudEvent.Kind.UNISSUED_CODE_USE:
        lines += ["", _("This code was never issued to a customer: the batch's codes may have leaked.")]
    elif event.kind == FraudEvent.Kind.LOCKOUT:
        lines += ["", _("A lockout that should not have happened can be lifted from the event's page.")]
    lines += ["", _("Details in the admin: %(url)s") % {"url": admin_event_url(event)}]
    return subject, "\n".join(lines)


def deliver_alert(*, event_id: int) -> bool:
    """Mail the alert of one event unless already sent; True if mailed now.

    The event row is locked while mailing, so two workers running the same task send
    one mail. If sending fails, the row stays pending and the error propagates (the
    task retries). An event without recipients is marked sent with a warning.
    """
    with transaction.atomic():
        event = FraudEvent.objects.select_for_update().filter(pk=event_id).first()
        if event is None or event.alert != FraudEvent.Alert.PENDING:
            return False
        recipients = alert_recipients(event)
        if recipients:
            subject, body = render_alert(event)
            send_mail(subject, body, None, recipients)
        else:
            logger.warning("fraud event %s has no one to alert", event.pk)
        event.alert, event.alerted_at = FraudEvent.Alert.SENT, timezone.now()
        event.save(update_fields=["alert", "alerted_at"])
        return bool(recipients)


def pending_alert_ids(*, older_than_seconds: int = 300, limit: int = 500) -> list[int]:
    """Events whose alert was never delivered (e.g. the broker was down at commit)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(
        FraudEvent.objects.filter(alert=FraudEvent.Alert.PENDING, created_at__lt=cutoff)
        .order_by("pk").values_list("pk", flat=True)[:limit]
    )
