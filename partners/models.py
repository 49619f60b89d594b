"""Partner brands, their agreements with merchants, the settlement ledger and statements.

Tables and constraints only; every write goes through `partners/services/`. The
ledger, statements, their lines and lifecycle events are append-only: a database
trigger refuses UPDATE and DELETE on SQLite and PostgreSQL (migration 0003), and the
model layer refuses them earlier with a clear error (AppendOnlyModel).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import F, Q
from rest_framework_api_key.models import AbstractAPIKey


class Partner(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    contact_email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PartnerAPIKey(AbstractAPIKey):
    """A hashed API key acting for one partner (only the prefix is stored in clear)."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="api_keys")

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "partner API key"
        verbose_name_plural = "partner API keys"


# --- append-only guard -------------------------------------------------------------


class AppendOnlyError(Exception):
    """An attempt to change or delete a row of an append-only table."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError(f"{self.model._meta.db_table} is append-only: UPDATE refused")

    def delete(self):
        raise AppendOnlyError(f"{self.model._meta.db_table} is append-only: DELETE refused")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError(f"{self.model._meta.db_table} is append-only: UPDATE refused")


class AppendOnlyModel(models.Model):
    """Rows are inserted once; save() of an existing row and delete() raise AppendOnlyError."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(f"{self._meta.db_table} is append-only: UPDATE refused")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{self._meta.db_table} is append-only: DELETE refused")


# --- agreements --------------------------------------------------------------------


class Agreement(models.Model):
    """One merchant's settlement relation with one partner in one currency.

    The schedule (period and time zone), the currency and the dispute window belong
    to the agreement, so statements (one per agreement and period) are per merchant,
    partner, currency and period. What is priced and at what price lives in its
    versions.
    """

    class Period(models.TextChoices):
        WEEKLY = "weekly"
        MONTHLY = "monthly"

    merchant = models.ForeignKey("vouchers.Merchant", on_delete=models.PROTECT, related_name="agreements")
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="agreements")
    name = models.CharField(max_length=200, blank=True)
    currency = models.CharField(max_length=3, help_text="ISO 4217 settlement currency, e.g. USD, JPY.")
    period = models.CharField(max_length=16, choices=Period.choices, default=Period.MONTHLY)
    timezone = models.CharField(
        max_length=64, default="UTC", help_text="IANA time zone of the period boundaries, e.g. Europe/Berlin."
    )
    dispute_window_days = models.PositiveIntegerField(default=14)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["merchant__name", "partner__name", "currency"]
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "partner", "currency"], name="agreement_one_per_merchant_partner_currency"
            ),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="agreement_currency_iso"),
            models.CheckConstraint(
                condition=Q(period__in=["weekly", "monthly"]), name="agreement_period_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name or f"{self.merchant} / {self.partner} ({self.currency})"


class AgreementVersion(models.Model):
    """The terms of an agreement from `valid_from` until `valid_until` (open if empty).

    A version that has priced an event is never edited: a change is a new version
    from a date. Versions of one agreement never overlap (checked by the service
    under a lock on the agreement).
    """

    class Basis(models.TextChoices):
        ISSUED = "issued"
        REDEEMED = "redeemed"

    class Direction(models.TextChoices):
        MERCHANT_PAYS_PARTNER = "merchant_pays_partner"
        PARTNER_PAYS_MERCHANT = "partner_pays_merchant"

    agreement = models.ForeignKey(Agreement, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    products = models.ManyToManyField("vouchers.Product", related_name="agreement_versions")
    basis = models.CharField(max_length=16, choices=Basis.choices)
    unit_amount_minor = models.BigIntegerField(
        null=True, blank=True, help_text="Fixed price per event in minor units (cents, yen, fils)."
    )
    rate_bps = models.PositiveIntegerField(
        null=True, blank=True, help_text="Price as basis points of the product's face value (100 = 1%)."
    )
    direction = models.CharField(max_length=32, choices=Direction.choices)
    valid_from = models.DateTimeField()
    valid_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["agreement_id", "valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["agreement", "number"], name="agreementversion_number_unique"),
            models.CheckConstraint(
                condition=(Q(unit_amount_minor__isnull=False) & Q(rate_bps__isnull=True))
                | (Q(unit_amount_minor__isnull=True) & Q(rate_bps__isnull=False)),
                name="agreementversion_one_price",
            ),
            models.CheckConstraint(
                condition=Q(unit_amount_minor__isnull=True) | Q(unit_amount_minor__gte=0),
                name="agreementversion_unit_amount_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(valid_until__isnull=True) | Q(valid_until__gt=F("valid_from")),
                name="agreementversion_window_ordered",
            ),
            models.CheckConstraint(
                condition=Q(basis__in=["issued", "redeemed"]), name="agreementversion_basis"
            ),
            models.CheckConstraint(
                condition=Q(direction__in=["merchant_pays_partner", "partner_pays_merchant"]),
                name="agreementversion_direction",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agreement} v{self.number}"

    @property
    def sign(self) -> int:
        """Positive is owed to the partner."""
        return 1 if self.direction == self.Direction.MERCHANT_PAYS_PARTNER else -1


# --- ledger ------------------------------------------------------------------------


class LedgerHead(models.Model):
    """The head of one partner's hash chain: locked briefly to append an entry."""

    partner = models.OneToOneField(Partner, primary_key=True, on_delete=models.PROTECT, related_name="+")
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"ledger head of partner {self.partner_id}: {self.seq}"


class LedgerEntry(AppendOnlyModel):
    """One priced event, correction, adjustment or payment. Never updated or deleted.

    `amount_minor` is signed: positive is owed to the partner by the merchant. The
    source is named by type and id (never a code). `source_key` is unique, so one
    source event prices once per agreement version.
    """

    class Kind(models.TextChoices):
        ACCRUAL = "accrual"
        REVERSAL = "reversal"
        ADJUSTMENT = "adjustment"
        PAYMENT = "payment"

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="ledger_entries")
    merchant = models.ForeignKey("vouchers.Merchant", on_delete=models.PROTECT, related_name="+")
    agreement = models.ForeignKey(Agreement, on_delete=models.PROTECT, related_name="entries")
    agreement_version = models.ForeignKey(
        AgreementVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="entries"
    )
    seq = models.BigIntegerField(help_text="Per-partner sequence number, from 1.")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    currency = models.CharField(max_length=3)
    amount_minor = models.BigIntegerField()
    source_type = models.CharField(max_length=32)
    source_id = models.CharField(max_length=80)
    source_key = models.CharField(max_length=200, unique=True)
    sku = models.CharField(max_length=64, blank=True)
    code_last4 = models.CharField(max_length=4, blank=True)
    reverses = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by"
    )
    refers_to_statement = models.ForeignKey(
        "Statement",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="referring_entries",
        help_text="The statement an adjustment or payment concerns.",
    )
    memo = models.CharField(max_length=500, blank=True)
    actor = models.CharField(max_length=64, blank=True)
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["partner_id", "seq"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.UniqueConstraint(fields=["partner", "seq"], name="ledgerentry_partner_seq_unique"),
            models.CheckConstraint(
                condition=Q(kind__in=["accrual", "reversal", "adjustment", "payment"]),
                name="ledgerentry_kind",
            ),
        ]
        indexes = [models.Index(fields=["agreement", "occurred_at"], name="ledgerentry_agreement_time_idx")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind} {self.amount_minor} {self.currency}"


# --- statements --------------------------------------------------------------------


class Statement(AppendOnlyModel):
    """One closed period of one agreement: its lines, totals and signed document.

    Never changes once issued. Its lifecycle status comes from its append-only
    events, its payment status from payment entries.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agreement = models.ForeignKey(Agreement, on_delete=models.PROTECT, related_name="statements")
    merchant = models.ForeignKey("vouchers.Merchant", on_delete=models.PROTECT, related_name="+")
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="statements")
    number = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    timezone = models.CharField(max_length=64)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    opening_minor = models.BigIntegerField()
    total_minor = models.BigIntegerField()
    closing_minor = models.BigIntegerField()
    line_count = models.PositiveIntegerField()
    issued_at = models.DateTimeField()
    dispute_deadline = models.DateTimeField()
    previous = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="next_statement"
    )
    previous_sha256 = models.CharField(max_length=64, blank=True)
    content_sha256 = models.CharField(max_length=64)
    document = models.BinaryField(help_text="The canonical JSON (RFC 8785) that was signed.")
    signature = models.TextField(help_text="Compact JWS with detached payload (EdDSA).")
    kid = models.CharField(max_length=64)

    class Meta:
        ordering = ["-period_start"]
        constraints = [
            models.UniqueConstraint(fields=["agreement", "period_start"], name="statement_one_per_period"),
            models.UniqueConstraint(fields=["agreement", "number"], name="statement_number_unique"),
        ]

    def __str__(self) -> str:
        return f"Statement {self.number} of {self.agreement_id} ({self.period_start:%Y-%m-%d})"


class StatementLine(AppendOnlyModel):
    """An entry on a statement. The unique entry makes each entry land on exactly one.

    A close inserts every line of a statement in one statement, possibly a million rows,
    before the statement row exists. Per-row foreign-key checks would run a million
    look-ups at commit, so the two references are checked by triggers instead
    (migration 0005): the inserted lines' entries, in one set-based query per INSERT
    (PostgreSQL; per row on SQLite), and a statement row's line_count against its lines
    when it is inserted. Neither entries nor statements can be deleted.
    """

    statement = models.ForeignKey(
        Statement, on_delete=models.PROTECT, related_name="lines", db_constraint=False, db_index=False
    )
    entry = models.OneToOneField(
        LedgerEntry, on_delete=models.PROTECT, related_name="line", db_constraint=False
    )
    line_no = models.PositiveIntegerField()
    original_statement = models.ForeignKey(
        Statement,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,  # never looked up by; an index would cost every line's insert
        help_text="Set on a line that corrects an earlier statement.",
    )

    class Meta:
        ordering = ["statement_id", "line_no"]
        constraints = [
            models.UniqueConstraint(fields=["statement", "line_no"], name="statementline_number_unique"),
        ]

    def __str__(self) -> str:
        return f"line {self.line_no}"


class Dispute(models.Model):
    """A partner's dispute of a statement (or some of its lines), resolved by merchant staff."""

    class Status(models.TextChoices):
        OPEN = "open"
        ACCEPTED = "accepted"
        REJECTED = "rejected"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    statement = models.ForeignKey(Statement, on_delete=models.PROTECT, related_name="disputes")
    reason = models.CharField(max_length=1000)
    lines = models.JSONField(default=list, blank=True)
    claimed_amount_minor = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    resolution_reason = models.CharField(max_length=1000, blank=True)
    adjustment = models.OneToOneField(
        LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="dispute"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Dispute of statement {self.statement.number} ({self.status})"


class StatementEvent(AppendOnlyModel):
    """Every transition of a statement or its disputes and payments, with who and when."""

    statement = models.ForeignKey(Statement, on_delete=models.PROTECT, related_name="events")
    action = models.CharField(max_length=32)
    actor = models.CharField(max_length=64, help_text="user:<id>, partner:<id> or system.")
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["statement_id", "id"]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor}"


class SigningKey(models.Model):
    """A statement-signing public key, kept once it has signed, so that it stays published
    after its private key leaves the environment's key ring (retired keys still verify)."""

    kid = models.CharField(max_length=64, unique=True)
    public_key = models.CharField(max_length=64, help_text="Ed25519 public key, base64url (JWK `x`).")
    first_used_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["first_used_at"]

    def __str__(self) -> str:
        return self.kid
