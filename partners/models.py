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
from django.utils.translation import gettext_lazy as _

from config.apikeys import TranslatedAPIKey


class Partner(models.Model):
    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=64, unique=True)
    contact_email = models.EmailField(_("contact email"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("partner")
        verbose_name_plural = _("partners")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PartnerAPIKey(TranslatedAPIKey):
    """A hashed API key acting for one partner (only the prefix is stored in clear)."""

    partner = models.ForeignKey(
        Partner, verbose_name=_("partner"), on_delete=models.CASCADE, related_name="api_keys",
    )

    class Meta(TranslatedAPIKey.Meta):
        verbose_name = _("partner API key")
        verbose_name_plural = _("partner API keys")


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
        WEEKLY = "weekly", _("Weekly")
        MONTHLY = "monthly", _("Monthly")

    merchant = models.ForeignKey(
        "vouchers.Merchant", verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="agreements",
    )
    partner = models.ForeignKey(
        Partner, verbose_name=_("partner"), on_delete=models.PROTECT, related_name="agreements",
    )
    name = models.CharField(_("name"), max_length=200, blank=True)
    currency = models.CharField(
        _("currency"), max_length=3, help_text=_("ISO 4217 settlement currency, e.g. USD, JPY."),
    )
    period = models.CharField(_("period"), max_length=16, choices=Period.choices, default=Period.MONTHLY)
    timezone = models.CharField(
        _("timezone"), max_length=64, default="UTC",
        help_text=_("IANA time zone of the period boundaries, e.g. Europe/Berlin."),
    )
    dispute_window_days = models.PositiveIntegerField(_("dispute window days"), default=14)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("agreement")
        verbose_name_plural = _("agreements")
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
        ISSUED = "issued", _("Issued")
        REDEEMED = "redeemed", _("Redeemed")

    class Direction(models.TextChoices):
        MERCHANT_PAYS_PARTNER = "merchant_pays_partner", _("Merchant Pays Partner")
        PARTNER_PAYS_MERCHANT = "partner_pays_merchant", _("Partner Pays Merchant")

    agreement = models.ForeignKey(
        Agreement, verbose_name=_("agreement"), on_delete=models.PROTECT, related_name="versions",
    )
    number = models.PositiveIntegerField(_("number"))
    products = models.ManyToManyField(
        "vouchers.Product", verbose_name=_("products"), related_name="agreement_versions",
    )
    basis = models.CharField(_("basis"), max_length=16, choices=Basis.choices)
    unit_amount_minor = models.BigIntegerField(
        _("unit amount minor"), null=True, blank=True,
        help_text=_("Fixed price per event in minor units (cents, yen, fils)."),
    )
    rate_bps = models.PositiveIntegerField(
        _("rate bps"), null=True, blank=True,
        help_text=_("Price as basis points of the product's face value (100 = 1%)."),
    )
    direction = models.CharField(_("direction"), max_length=32, choices=Direction.choices)
    valid_from = models.DateTimeField(_("valid from"))
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("agreement version")
        verbose_name_plural = _("agreement versions")
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

    partner = models.OneToOneField(
        Partner, verbose_name=_("partner"), primary_key=True, on_delete=models.PROTECT, related_name="+",
    )
    seq = models.BigIntegerField(_("seq"), default=0)
    hash = models.CharField(_("hash"), max_length=64, default="0" * 64)

    class Meta:
        verbose_name = _("ledger head")
        verbose_name_plural = _("ledger heads")

    def __str__(self) -> str:
        return f"ledger head of partner {self.partner_id}: {self.seq}"


class LedgerEntry(AppendOnlyModel):
    """One priced event, correction, adjustment or payment. Never updated or deleted.

    `amount_minor` is signed: positive is owed to the partner by the merchant. The
    source is named by type and id (never a code). `source_key` is unique, so one
    source event prices once per agreement version.
    """

    class Kind(models.TextChoices):
        ACCRUAL = "accrual", _("Accrual")
        REVERSAL = "reversal", _("Reversal")
        ADJUSTMENT = "adjustment", _("Adjustment")
        PAYMENT = "payment", _("Payment")

    # Every insert pays for each index of this table, under the partner's chain-head
    # lock: no index that another one already serves (partner: the unique (partner, seq);
    # agreement: (agreement, occurred_at); source_key needs no LIKE index).
    partner = models.ForeignKey(
        Partner, verbose_name=_("partner"), on_delete=models.PROTECT, related_name="ledger_entries",
        db_index=False,
    )
    merchant = models.ForeignKey(
        "vouchers.Merchant", verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="+",
    )
    agreement = models.ForeignKey(
        Agreement, verbose_name=_("agreement"), on_delete=models.PROTECT, related_name="entries",
        db_index=False,
    )
    agreement_version = models.ForeignKey(
        AgreementVersion, verbose_name=_("agreement version"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="entries",
    )
    seq = models.BigIntegerField(_("seq"), help_text=_("Per-partner sequence number, from 1."))
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    currency = models.CharField(_("currency"), max_length=3)
    amount_minor = models.BigIntegerField(_("amount minor"))
    source_type = models.CharField(_("source type"), max_length=32)
    source_id = models.CharField(_("source id"), max_length=80)
    source_key = models.CharField(_("source key"), max_length=200)
    sku = models.CharField(_("sku"), max_length=64, blank=True)
    code_last4 = models.CharField(_("code last4"), max_length=4, blank=True)
    reverses = models.OneToOneField(
        "self", verbose_name=_("reverses"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="reversed_by",
    )
    refers_to_statement = models.ForeignKey(
        "Statement",
        verbose_name=_("refers to statement"), null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="referring_entries",
        help_text=_("The statement an adjustment or payment concerns."),
        db_index=False,  # indexed where set only (Meta.indexes): accruals and reversals have none
    )
    memo = models.CharField(_("memo"), max_length=500, blank=True)
    actor = models.CharField(_("actor"), max_length=64, blank=True)
    occurred_at = models.DateTimeField(_("occurred at"))
    recorded_at = models.DateTimeField(_("recorded at"))
    prev_hash = models.CharField(_("prev hash"), max_length=64)
    hash = models.CharField(_("hash"), max_length=64)

    class Meta:
        verbose_name = _("ledger entry")
        ordering = ["partner_id", "seq"]
        verbose_name_plural = _("ledger entries")
        constraints = [
            models.UniqueConstraint(fields=["partner", "seq"], name="ledgerentry_partner_seq_unique"),
            # one source event prices once per agreement version
            models.UniqueConstraint(fields=["source_key"], name="ledgerentry_source_key_unique"),
            models.CheckConstraint(
                condition=Q(kind__in=["accrual", "reversal", "adjustment", "payment"]),
                name="ledgerentry_kind",
            ),
        ]
        indexes = [
            models.Index(fields=["agreement", "occurred_at"], name="ledgerentry_agreement_time_idx"),
            models.Index(
                fields=["refers_to_statement"], name="ledgerentry_refers_to_idx",
                condition=Q(refers_to_statement__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind} {self.amount_minor} {self.currency}"


# --- statements --------------------------------------------------------------------


class Statement(AppendOnlyModel):
    """One closed period of one agreement: its lines, totals and signed document.

    Never changes once issued. Its lifecycle status comes from its append-only
    events, its payment status from payment entries.
    """

    id = models.UUIDField(_("id"), primary_key=True, default=uuid.uuid4, editable=False)
    agreement = models.ForeignKey(
        Agreement, verbose_name=_("agreement"), on_delete=models.PROTECT, related_name="statements",
    )
    merchant = models.ForeignKey(
        "vouchers.Merchant", verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="+",
    )
    partner = models.ForeignKey(
        Partner, verbose_name=_("partner"), on_delete=models.PROTECT, related_name="statements",
    )
    number = models.PositiveIntegerField(_("number"))
    currency = models.CharField(_("currency"), max_length=3)
    timezone = models.CharField(_("timezone"), max_length=64)
    period_start = models.DateTimeField(_("period start"))
    period_end = models.DateTimeField(_("period end"))
    opening_minor = models.BigIntegerField(_("opening minor"))
    total_minor = models.BigIntegerField(_("total minor"))
    closing_minor = models.BigIntegerField(_("closing minor"))
    line_count = models.PositiveIntegerField(_("line count"))
    issued_at = models.DateTimeField(_("issued at"))
    dispute_deadline = models.DateTimeField(_("dispute deadline"))
    previous = models.OneToOneField(
        "self", verbose_name=_("previous"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="next_statement",
    )
    previous_sha256 = models.CharField(_("previous sha256"), max_length=64, blank=True)
    content_sha256 = models.CharField(_("content sha256"), max_length=64)
    document = models.BinaryField(
        _("document"), help_text=_("The canonical JSON (RFC 8785) that was signed."),
    )
    signature = models.TextField(_("signature"), help_text=_("Compact JWS with detached payload (EdDSA)."))
    kid = models.CharField(_("kid"), max_length=64)

    class Meta:
        verbose_name = _("statement")
        verbose_name_plural = _("statements")
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
        Statement, verbose_name=_("statement"), on_delete=models.PROTECT, related_name="lines",
        db_constraint=False, db_index=False,
    )
    entry = models.OneToOneField(
        LedgerEntry, verbose_name=_("entry"), on_delete=models.PROTECT, related_name="line",
        db_constraint=False,
    )
    line_no = models.PositiveIntegerField(_("line no"))
    original_statement = models.ForeignKey(
        Statement,
        verbose_name=_("original statement"), null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,  # never looked up by; an index would cost every line's insert
        help_text=_("Set on a line that corrects an earlier statement."),
    )

    class Meta:
        verbose_name = _("statement line")
        verbose_name_plural = _("statement lines")
        ordering = ["statement_id", "line_no"]
        constraints = [
            models.UniqueConstraint(fields=["statement", "line_no"], name="statementline_number_unique"),
        ]

    def __str__(self) -> str:
        return f"line {self.line_no}"


class Dispute(models.Model):
    """A partner's dispute of a statement (or some of its lines), resolved by merchant staff."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        ACCEPTED = "accepted", _("Accepted")
        REJECTED = "rejected", _("Rejected")

    id = models.UUIDField(_("id"), primary_key=True, default=uuid.uuid4, editable=False)
    statement = models.ForeignKey(
        Statement, verbose_name=_("statement"), on_delete=models.PROTECT, related_name="disputes",
    )
    reason = models.CharField(_("reason"), max_length=1000)
    lines = models.JSONField(_("lines"), default=list, blank=True)
    claimed_amount_minor = models.BigIntegerField(_("claimed amount minor"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.OPEN)
    resolution_reason = models.CharField(_("resolution reason"), max_length=1000, blank=True)
    adjustment = models.OneToOneField(
        LedgerEntry, verbose_name=_("adjustment"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="dispute",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)

    class Meta:
        verbose_name = _("dispute")
        verbose_name_plural = _("disputes")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Dispute of statement {self.statement.number} ({self.status})"


class StatementEvent(AppendOnlyModel):
    """Every transition of a statement or its disputes and payments, with who and when."""

    statement = models.ForeignKey(
        Statement, verbose_name=_("statement"), on_delete=models.PROTECT, related_name="events",
    )
    action = models.CharField(_("action"), max_length=32)
    actor = models.CharField(_("actor"), max_length=64, help_text=_("user:<id>, partner:<id> or system."))
    details = models.JSONField(_("details"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("statement event")
        verbose_name_plural = _("statement events")
        ordering = ["statement_id", "id"]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor}"


class SigningKey(models.Model):
    """A statement-signing public key, kept once it has signed, so that it stays published
    after its private key leaves the environment's key ring (retired keys still verify)."""

    kid = models.CharField(_("kid"), max_length=64, unique=True)
    public_key = models.CharField(
        _("public key"), max_length=64, help_text=_("Ed25519 public key, base64url (JWK `x`)."),
    )
    first_used_at = models.DateTimeField(_("first used at"), auto_now_add=True)

    class Meta:
        verbose_name = _("signing key")
        verbose_name_plural = _("signing keys")
        ordering = ["first_used_at"]

    def __str__(self) -> str:
        return self.kid
