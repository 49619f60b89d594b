"""The audit log: who did what to which object, and why; append-only and hash-chained.

Each entry belongs to a chain: one per merchant (`merchant:<id>`), plus `global` for
acts that concern no merchant. Within a chain entries are numbered 1, 2, 3 ... and each
entry's `hash` is an HMAC over its own fields and the previous entry's hash, so a row
changed, deleted or inserted behind the application's back breaks the chain
(`manage.py verify_audit`). `AuditChainHead` holds each chain's last number and hash:
it is the lock that serialises appends to one chain and it shows a deleted last entry.

Entries are never updated or deleted: the model refuses it (AppendOnlyViolation) and
so does the database (triggers on PostgreSQL and SQLite). No entry holds a secret:
codes appear by id and last 4 characters, API keys by prefix.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from vouchers.audit.exceptions import AppendOnlyViolation

GENESIS_HASH = "0" * 64


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyViolation("audit entries are append-only: update refused")

    def delete(self):
        raise AppendOnlyViolation("audit entries are append-only: delete refused")

    def _raw_delete(self, using):
        raise AppendOnlyViolation("audit entries are append-only: delete refused")


class AuditEntry(models.Model):
    class Action(models.TextChoices):
        CODE_REVEALED = "code_revealed", "code revealed"
        API_KEY_CREATED = "api_key_created", "API key created"
        API_KEY_REVOKED = "api_key_revoked", "API key revoked"
        BATCH_PAUSED = "batch_paused", "batch paused"
        BATCH_RESUMED = "batch_resumed", "batch resumed"
        BATCH_VOIDED = "batch_voided", "batch voided"
        REVIEW_APPROVED = "review_approved", "review approved"
        REVIEW_DENIED = "review_denied", "review denied"
        LOCKOUT_LIFTED = "lockout_lifted", "lockout lifted"

    chain = models.CharField(_("chain"), max_length=32, editable=False)
    seq = models.PositiveBigIntegerField(_("seq"), editable=False)
    merchant = models.ForeignKey(
        "vouchers.Merchant", verbose_name=_("merchant"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="+",
    )
    # Free text rather than choices: other apps (settlement) add their own actions.
    action = models.CharField(_("action"), max_length=48)
    actor = models.CharField(_("actor"), max_length=64, help_text=_("user:<id> or system."))
    actor_name = models.CharField(_("actor name"), max_length=150, blank=True)
    # No constraint and no cascade: deleting a user leaves their entries as they were
    # (actor and actor_name keep who it was).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), null=True, blank=True, on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
    )
    target_type = models.CharField(_("target type"), max_length=64, blank=True)
    target_id = models.CharField(_("target id"), max_length=64, blank=True)
    target_label = models.CharField(_("target label"), max_length=200, blank=True)
    reason = models.CharField(_("reason"), max_length=500, blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"))
    prev_hash = models.CharField(_("prev hash"), max_length=64)
    hash = models.CharField(_("hash"), max_length=64)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit log")
        constraints = [
            models.UniqueConstraint(fields=["chain", "seq"], name="audit_entry_chain_seq_unique"),
        ]
        indexes = [models.Index(fields=["merchant", "created_at"], name="audit_merchant_time_idx")]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_name or self.actor} ({self.chain} #{self.seq})"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyViolation("audit entries are append-only: update refused")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyViolation("audit entries are append-only: delete refused")


class AuditChainHead(models.Model):
    """The last entry of one chain: locked to append, compared by verify_audit to catch a lost tail."""

    chain = models.CharField(_("chain"), max_length=32, unique=True)
    seq = models.PositiveBigIntegerField(_("seq"), default=0)
    hash = models.CharField(_("hash"), max_length=64, default=GENESIS_HASH)

    class Meta:
        verbose_name = _("audit chain head")
        verbose_name_plural = _("audit chain heads")

    def __str__(self) -> str:
        return f"{self.chain} at #{self.seq}"
