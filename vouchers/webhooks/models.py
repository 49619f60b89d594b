"""Webhook endpoints, the event outbox and the delivery log.

An event row (`WebhookEvent`) and one delivery row per subscribed endpoint are
written in the same transaction as the change they report (a transactional outbox):
the change and its notification commit or roll back together. A worker then sends
each delivery until it is acknowledged or its retry period ends.

The owner of an endpoint is a storefront or a partner: two nullable foreign keys,
exactly one set (a check constraint). `merchant` is the storefront's merchant,
copied so that the admin scopes endpoints, events and deliveries by one column;
it is empty for a partner's endpoint.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class WebhookEndpoint(models.Model):
    id = models.UUIDField(_("id"), primary_key=True, default=uuid.uuid4, editable=False)
    merchant = models.ForeignKey(
        "vouchers.Merchant", verbose_name=_("merchant"), null=True, blank=True, on_delete=models.CASCADE,
        related_name="+",
    )
    storefront = models.ForeignKey(
        "vouchers.Storefront", verbose_name=_("storefront"), null=True, blank=True, on_delete=models.CASCADE,
        related_name="webhook_endpoints",
    )
    partner = models.ForeignKey(
        "partners.Partner", verbose_name=_("partner"), null=True, blank=True, on_delete=models.CASCADE,
        related_name="webhook_endpoints",
    )
    url = models.URLField(_("url"), max_length=2000)
    events = models.JSONField(_("events"), default=list, help_text=_("Event types this endpoint receives."))
    enabled = models.BooleanField(_("enabled"), default=True)
    description = models.CharField(_("description"), max_length=200, blank=True)
    # The signing secret, sealed with the key ring's primary key (AES-256-GCM), bound to
    # this endpoint's id. Shown in clear once, when created or rotated.
    secret_ciphertext = models.BinaryField(_("secret ciphertext"), editable=False)
    secret_nonce = models.BinaryField(_("secret nonce"), max_length=12, editable=False)
    secret_key_id = models.CharField(_("secret key id"), max_length=32, editable=False)
    # During a rotation the previous secret signs too (a second v1) until this time.
    previous_secret_ciphertext = models.BinaryField(
        _("previous secret ciphertext"), null=True, blank=True, editable=False,
    )
    previous_secret_nonce = models.BinaryField(
        _("previous secret nonce"), max_length=12, null=True, blank=True, editable=False,
    )
    previous_secret_key_id = models.CharField(
        _("previous secret key id"), max_length=32, blank=True, editable=False,
    )
    previous_secret_expires_at = models.DateTimeField(
        _("previous secret expires at"), null=True, blank=True, editable=False,
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering = ["created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(storefront__isnull=False) & Q(partner__isnull=True))
                | (Q(storefront__isnull=True) & Q(partner__isnull=False)),
                name="webhookendpoint_one_owner",
            ),
        ]

    def __str__(self) -> str:
        return self.url

    @property
    def owner_label(self) -> str:
        return f"storefront:{self.storefront_id}" if self.storefront_id else f"partner:{self.partner_id}"


class WebhookEvent(models.Model):
    """One notification, as sent: `payload` is the exact JSON body (never a code)."""

    id = models.UUIDField(_("id"), primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(_("type"), max_length=64)
    merchant = models.ForeignKey(
        "vouchers.Merchant", verbose_name=_("merchant"), null=True, blank=True, on_delete=models.CASCADE,
        related_name="+",
    )
    payload = models.JSONField(_("payload"))
    # Deliveries of one endpoint that share this key are sent in order (e.g. an
    # issuance's events, a code's redemption and its reversal).
    ordering_key = models.CharField(_("ordering key"), max_length=100, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.pk}"


class WebhookDelivery(models.Model):
    """One event to one endpoint: the delivery log (attempts, last answer, outcome)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    event = models.ForeignKey(
        WebhookEvent, verbose_name=_("event"), on_delete=models.CASCADE, related_name="deliveries",
    )
    endpoint = models.ForeignKey(
        WebhookEndpoint, verbose_name=_("endpoint"), on_delete=models.CASCADE, related_name="deliveries",
    )
    merchant = models.ForeignKey(
        "vouchers.Merchant", verbose_name=_("merchant"), null=True, blank=True, on_delete=models.CASCADE,
        related_name="+",
    )
    ordering_key = models.CharField(_("ordering key"), max_length=100, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"))
    # Retried until then (WEBHOOK_RETRY_FOR_SECONDS after creation or a redelivery), then failed.
    retry_until = models.DateTimeField(_("retry until"))
    # A worker sending it holds this lease; another worker skips it until it passes.
    lease_until = models.DateTimeField(_("lease until"), null=True, blank=True)
    last_attempt_at = models.DateTimeField(_("last attempt at"), null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(_("last status code"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("webhook delivery")
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = _("webhook deliveries")
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="webhookdelivery_once_per_endpoint"),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "succeeded", "failed"]),
                name="webhookdelivery_status_valid",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], condition=Q(status="pending"), name="webhookdelivery_due_idx",
            ),
            models.Index(
                fields=["endpoint", "ordering_key", "id"], condition=Q(status="pending"),
                name="webhookdelivery_order_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event.type} -> {self.endpoint.url} ({self.status})"
