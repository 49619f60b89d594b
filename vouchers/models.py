"""Tables and constraints of the voucher inventory.

No business logic here beyond small properties: every write goes through
`vouchers/services/`. The database constraints back the invariants of docs/invariants.md
wherever a constraint can express them.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from config.apikeys import TranslatedAPIKey


class Merchant(models.Model):
    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=64, unique=True)
    reversal_window_days = models.PositiveIntegerField(
        _("reversal window days"), default=30, help_text=_("How long after a redemption it may be reversed.")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("merchant")
        verbose_name_plural = _("merchants")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MerchantStaff(models.Model):
    """A Django user working for exactly one merchant (the admin is scoped by it)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE,
        related_name="merchant_staff",
    )
    merchant = models.ForeignKey(
        Merchant, verbose_name=_("merchant"), on_delete=models.CASCADE, related_name="staff",
    )

    class Meta:
        verbose_name = _("merchant staff member")
        verbose_name_plural = _("merchant staff")

    def __str__(self) -> str:
        return f"{self.user} @ {self.merchant}"


class Storefront(models.Model):
    """A shop that sells a merchant's codes through the API (server to server)."""

    merchant = models.ForeignKey(
        Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="storefronts",
    )
    name = models.CharField(_("name"), max_length=200)
    is_active = models.BooleanField(_("is active"), default=True)
    reservation_ttl_seconds = models.PositiveIntegerField(
        _("reservation ttl seconds"), default=15 * 60, validators=[MinValueValidator(30)],
        help_text=_("How long a reservation holds its codes before they return to stock."),
    )
    products: models.ManyToManyField = models.ManyToManyField(
        "Product", verbose_name=_("products"), blank=True, related_name="storefronts",
        help_text=_("Products this storefront may sell; none selected means all of the merchant's."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("storefront")
        verbose_name_plural = _("storefronts")
        ordering = ["merchant__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "name"], name="storefront_name_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.merchant} / {self.name}"


class StorefrontAPIKey(TranslatedAPIKey):
    """A hashed API key acting for one storefront (only the prefix is stored in clear)."""

    storefront = models.ForeignKey(
        Storefront, verbose_name=_("storefront"), on_delete=models.CASCADE, related_name="api_keys",
    )
    last_used_at = models.DateTimeField(
        _("last used at"), null=True, blank=True, editable=False,
        help_text=_("When the key last authenticated a request (updated at most once a minute)."),
    )

    class Meta(TranslatedAPIKey.Meta):
        verbose_name = _("storefront API key")
        verbose_name_plural = _("storefront API keys")


class Product(models.Model):
    merchant = models.ForeignKey(
        Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="products",
    )
    sku = models.CharField(_("sku"), max_length=64)
    name = models.CharField(_("name"), max_length=200)
    face_value = models.DecimalField(_("face value"), max_digits=12, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3, help_text=_("ISO 4217, e.g. USD, CNY."))
    partner = models.ForeignKey(
        "partners.Partner", verbose_name=_("partner"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="products", help_text=_("The partner brand that supplies or honours it."),
    )
    is_active = models.BooleanField(_("is active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("product")
        verbose_name_plural = _("products")
        ordering = ["merchant__name", "sku"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "sku"], name="product_sku_unique_per_merchant"),
            models.CheckConstraint(condition=Q(face_value__gt=0), name="product_face_value_positive"),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"), name="product_currency_iso4217"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} ({self.name})"


class Batch(models.Model):
    """A load of codes for one product: imported from a supplier's file or generated."""

    class Source(models.TextChoices):
        IMPORTED = "imported", _("Imported")
        GENERATED = "generated", _("Generated")

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        PAUSED = "paused", _("Paused")
        VOID = "void", _("Void")

    product = models.ForeignKey(
        Product, verbose_name=_("product"), on_delete=models.PROTECT, related_name="batches",
    )
    reference = models.CharField(
        _("reference"), max_length=200, blank=True, help_text=_("Supplier's reference or file name.")
    )
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    valid_from = models.DateTimeField(_("valid from"), null=True, blank=True)
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True)
    case_sensitive = models.BooleanField(
        _("case sensitive"), default=False,
        help_text=_("Whether codes differ by letter case (normalisation folds case if not)."),
    )
    format = models.JSONField(
        _("format"), default=dict, blank=True,
        help_text=_("Generation settings (length, alphabet, prefix, grouping, check character)."),
    )
    size = models.PositiveIntegerField(_("size"), default=0, help_text=_("Codes loaded into this batch."))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("created by"), null=True, blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("batch")
        ordering = ["-created_at"]
        verbose_name_plural = _("batches")
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_from__isnull=True) | Q(valid_until__isnull=True)
                | Q(valid_until__gt=models.F("valid_from")),
                name="batch_validity_window_ordered",
            ),
            models.CheckConstraint(
                condition=Q(source__in=["imported", "generated"]), name="batch_source_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["active", "paused", "void"]), name="batch_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"Batch {self.pk} of {self.product.sku}"


class Issuance(models.Model):
    """A storefront's request for N codes of a product: all of them or none."""

    # Not a column: the codes the fast path claimed, handed to the ledger and webhooks.
    claimed_codes: list[Code]

    class Status(models.TextChoices):
        RESERVED = "reserved", _("Reserved")
        ISSUED = "issued", _("Issued")
        REVIEW = "review", _("Review")
        CANCELLED = "cancelled", _("Cancelled")
        EXPIRED = "expired", _("Expired")
        DENIED = "denied", _("Denied")

    id = models.UUIDField(_("id"), primary_key=True, default=uuid.uuid4, editable=False)
    storefront = models.ForeignKey(
        Storefront, verbose_name=_("storefront"), on_delete=models.PROTECT, related_name="issuances",
    )
    product = models.ForeignKey(
        Product, verbose_name=_("product"), on_delete=models.PROTECT, related_name="issuances",
    )
    quantity = models.PositiveSmallIntegerField(_("quantity"))
    customer = models.CharField(_("customer"), max_length=128, blank=True)
    order_ref = models.CharField(_("order ref"), max_length=128, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices)
    reserved_until = models.DateTimeField(_("reserved until"), null=True, blank=True)
    context = models.JSONField(
        _("context"), default=dict, blank=True, help_text=_("End-customer ip, device, email."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("issuance")
        verbose_name_plural = _("issuances")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gte=1) & Q(quantity__lte=100), name="issuance_quantity_1_100"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["reserved", "issued", "review", "cancelled", "expired", "denied"]),
                name="issuance_status_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "reserved_until"], name="issuance_status_until_idx"),
            # The storefront's issuance list: newest first, or by its order reference.
            models.Index(fields=["storefront", "-created_at"], name="issuance_list_idx"),
            models.Index(fields=["storefront", "order_ref"], name="issuance_order_ref_idx"),
        ]

    def __str__(self) -> str:
        return f"Issuance {self.pk} ({self.status})"


class Code(models.Model):
    """One secret code, encrypted at rest; found by its blind index, never by plaintext."""

    class State(models.TextChoices):
        AVAILABLE = "available", _("Available")
        RESERVED = "reserved", _("Reserved")
        ISSUED = "issued", _("Issued")
        REDEEMED = "redeemed", _("Redeemed")
        VOID = "void", _("Void")

    # No index of its own: code_batch_state_idx (batch, state) serves every batch lookup,
    # and one index less is one write less per imported or voided code.
    batch = models.ForeignKey(
        Batch, verbose_name=_("batch"), on_delete=models.PROTECT, related_name="codes", db_index=False,
    )
    ciphertext = models.BinaryField(_("ciphertext"), help_text=_("AES-256-GCM ciphertext with its tag."))
    nonce = models.BinaryField(_("nonce"), max_length=12)
    key_id = models.CharField(_("key id"), max_length=32)
    blind_index = models.BinaryField(_("blind index"), max_length=32, unique=True)
    last4 = models.CharField(_("last4"), max_length=4)
    serial = models.CharField(_("serial"), max_length=64, null=True, blank=True)
    expires_at = models.DateTimeField(
        _("expires at"), null=True, blank=True,
        help_text=_("The supplier's own expiry for this code, if any."),
    )
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.AVAILABLE)
    issuance = models.ForeignKey(
        Issuance, verbose_name=_("issuance"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="codes",
    )
    state_changed_at = models.DateTimeField(_("state changed at"), null=True, blank=True)
    redeemed_at = models.DateTimeField(_("redeemed at"), null=True, blank=True)
    is_canary = models.BooleanField(
        _("is canary"), default=False,
        help_text=_("A planted code that is never issued; any use of it means stock leaked."),
    )

    class Meta:
        verbose_name = _("code")
        verbose_name_plural = _("codes")
        permissions = [("reveal_code", "Can reveal a code's plaintext (audited)")]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=["available", "reserved", "issued", "redeemed", "void"]),
                name="code_state_valid",
            ),
            # A held, sold or redeemed code belongs to exactly one issuance; stock to none.
            models.CheckConstraint(
                condition=~Q(state__in=["reserved", "issued", "redeemed"]) | Q(issuance__isnull=False),
                name="code_held_has_issuance",
            ),
            models.CheckConstraint(
                condition=~Q(state="available") | Q(issuance__isnull=True),
                name="code_available_has_no_issuance",
            ),
            models.CheckConstraint(
                condition=~Q(state="redeemed") | Q(redeemed_at__isnull=False),
                name="code_redeemed_has_time",
            ),
            # Canaries stay out of stock for good: they are void from the start.
            models.CheckConstraint(
                condition=Q(is_canary=False) | Q(state="void"), name="code_canary_is_void"
            ),
        ]
        indexes = [
            # Claiming walks available codes of a batch in primary-key order.
            models.Index(
                fields=["batch", "id"], condition=Q(state="available"), name="code_available_idx"
            ),
            models.Index(fields=["batch", "state"], name="code_batch_state_idx"),
            models.Index(fields=["batch"], condition=Q(is_canary=True), name="code_canary_idx"),
            models.Index(fields=["key_id", "id"], name="code_key_id_idx"),
        ]

    def __str__(self) -> str:
        return f"Code …{self.last4} ({self.state})"


class CodeEvent(models.Model):
    """Append-only history of every state change of a code, batch or issuance, and every reveal.

    Written in the same transaction as the change. Never holds a plaintext code.
    On PostgreSQL a trigger refuses UPDATE and DELETE on this table.
    """

    batch = models.ForeignKey(
        Batch, verbose_name=_("batch"), null=True, blank=True, on_delete=models.PROTECT, related_name="+",
    )
    code = models.ForeignKey(
        Code, verbose_name=_("code"), null=True, blank=True, on_delete=models.PROTECT, related_name="events",
    )
    issuance = models.ForeignKey(
        Issuance, verbose_name=_("issuance"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="events",
    )
    action = models.CharField(_("action"), max_length=32)
    from_state = models.CharField(_("from state"), max_length=16, blank=True)
    to_state = models.CharField(_("to state"), max_length=16, blank=True)
    actor = models.CharField(
        _("actor"), max_length=64, help_text=_("user:<id>, storefront:<id>, partner:<id> or system."),
    )
    details = models.JSONField(_("details"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("code event")
        verbose_name_plural = _("code events")
        ordering = ["-id"]
        indexes = [models.Index(fields=["code", "id"], name="codeevent_code_idx")]

    def __str__(self) -> str:
        return f"{self.action} {self.from_state}->{self.to_state} by {self.actor}"


class StockCounter(models.Model):
    """One shard of a per-batch, per-state code count.

    Stock is read by summing a batch's shards; a claim updates one random shard, so
    concurrent claims rarely touch the same row (see docs/stock.md).
    """

    batch = models.ForeignKey(
        Batch, verbose_name=_("batch"), on_delete=models.CASCADE, related_name="stock_counters",
    )
    state = models.CharField(_("state"), max_length=16, choices=Code.State.choices)
    shard = models.PositiveSmallIntegerField(_("shard"))
    count = models.BigIntegerField(_("count"), default=0)

    class Meta:
        verbose_name = _("stock counter")
        verbose_name_plural = _("stock counters")
        constraints = [
            models.UniqueConstraint(fields=["batch", "state", "shard"], name="stockcounter_unique"),
        ]

    def __str__(self) -> str:
        return f"batch {self.batch_id} {self.state}[{self.shard}] = {self.count}"


class Redemption(models.Model):
    """A code redeemed once; a reversal makes the code redeemable again."""

    id = models.UUIDField(_("id"), primary_key=True, default=uuid.uuid4, editable=False)
    code = models.ForeignKey(
        Code, verbose_name=_("code"), on_delete=models.PROTECT, related_name="redemptions",
    )
    storefront = models.ForeignKey(
        Storefront, verbose_name=_("storefront"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="redemptions",
    )
    partner = models.ForeignKey(
        "partners.Partner", verbose_name=_("partner"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="redemptions",
    )
    order_ref = models.CharField(_("order ref"), max_length=128, blank=True)
    location = models.CharField(_("location"), max_length=128, blank=True)
    redeemed_at = models.DateTimeField(_("redeemed at"))
    reversed_at = models.DateTimeField(_("reversed at"), null=True, blank=True)
    reversal_reason = models.CharField(_("reversal reason"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("redemption")
        verbose_name_plural = _("redemptions")
        ordering = ["-redeemed_at"]
        constraints = [
            # Backstop for the conditional UPDATE: one live redemption per code.
            models.UniqueConstraint(
                fields=["code"], condition=Q(reversed_at__isnull=True),
                name="redemption_one_live_per_code",
            ),
            models.CheckConstraint(
                condition=Q(storefront__isnull=False) | Q(partner__isnull=False),
                name="redemption_has_caller",
            ),
        ]
        indexes = [
            # The storefront's redemption list: newest first, or by its order reference.
            models.Index(fields=["storefront", "-redeemed_at"], name="redemption_list_idx"),
            models.Index(fields=["storefront", "order_ref"], name="redemption_order_ref_idx"),
        ]

    def __str__(self) -> str:
        return f"Redemption {self.pk}"


class IdempotencyRecord(models.Model):
    """The first response to a (caller, Idempotency-Key); never holds a plaintext code."""

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress", _("In Progress")
        DONE = "done", _("Done")

    caller = models.CharField(_("caller"), max_length=64)
    key = models.CharField(_("key"), max_length=255)
    fingerprint = models.CharField(_("fingerprint"), max_length=64)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.IN_PROGRESS)
    response_status = models.PositiveSmallIntegerField(_("response status"), null=True, blank=True)
    response_body = models.JSONField(_("response body"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("idempotency record")
        verbose_name_plural = _("idempotency records")
        constraints = [
            models.UniqueConstraint(fields=["caller", "key"], name="idempotency_caller_key_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.caller} {self.key} ({self.state})"


class LoadJob(models.Model):
    """An import or generation run in the background (a Celery task) because it is large.

    Holds the settings of the load (never a code), its progress and its outcome: the
    batch, counts and the per-line report (line, reason; reasons never hold a code).
    An import's file waits in a private directory on disk until the task has read it,
    and is deleted then; the task gets the job's id only.
    """

    class Kind(models.TextChoices):
        IMPORT = "import", _("Import")
        GENERATE = "generate", _("Generate")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    id = models.UUIDField(_("id"), primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.QUEUED)
    product = models.ForeignKey(
        Product, verbose_name=_("product"), on_delete=models.PROTECT, related_name="load_jobs",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("created by"), null=True, blank=True,
        on_delete=models.SET_NULL, related_name="+",
    )
    params = models.JSONField(
        _("params"), default=dict, blank=True, help_text=_("The load's settings (no code)."),
    )
    filename = models.CharField(
        _("filename"), max_length=255, blank=True, help_text=_("The uploaded file's name."),
    )
    stored_file = models.CharField(
        _("stored file"), max_length=255, blank=True, help_text=_("Where the upload waits."),
    )
    total = models.PositiveBigIntegerField(
        _("total"), null=True, blank=True, help_text=_("Rows or codes to load."),
    )
    processed = models.PositiveBigIntegerField(_("processed"), default=0)
    batch = models.ForeignKey(
        Batch, verbose_name=_("batch"), null=True, blank=True, on_delete=models.PROTECT, related_name="+",
    )
    imported = models.PositiveBigIntegerField(_("imported"), default=0)
    skipped = models.PositiveBigIntegerField(_("skipped"), default=0)
    bad_rows = models.PositiveBigIntegerField(_("bad rows"), default=0)
    report = models.JSONField(
        _("report"), default=list, blank=True, help_text=_("[line, reason] of bad rows."),
    )
    error = models.CharField(_("error"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("load job")
        verbose_name_plural = _("load jobs")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "done", "failed"]), name="loadjob_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.product.sku} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)
