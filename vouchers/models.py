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
from rest_framework_api_key.models import AbstractAPIKey


class Merchant(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    reversal_window_days = models.PositiveIntegerField(
        default=30, help_text="How long after a redemption it may be reversed."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MerchantStaff(models.Model):
    """A Django user working for exactly one merchant (the admin is scoped by it)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="merchant_staff"
    )
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="staff")

    class Meta:
        verbose_name = "merchant staff member"
        verbose_name_plural = "merchant staff"

    def __str__(self) -> str:
        return f"{self.user} @ {self.merchant}"


class Storefront(models.Model):
    """A shop that sells a merchant's codes through the API (server to server)."""

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="storefronts")
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    reservation_ttl_seconds = models.PositiveIntegerField(
        default=15 * 60, validators=[MinValueValidator(30)],
        help_text="How long a reservation holds its codes before they return to stock.",
    )
    products: models.ManyToManyField = models.ManyToManyField(
        "Product", blank=True, related_name="storefronts",
        help_text="Products this storefront may sell; none selected means all of the merchant's.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["merchant__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "name"], name="storefront_name_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.merchant} / {self.name}"


class StorefrontAPIKey(AbstractAPIKey):
    """A hashed API key acting for one storefront (only the prefix is stored in clear)."""

    storefront = models.ForeignKey(Storefront, on_delete=models.CASCADE, related_name="api_keys")
    last_used_at = models.DateTimeField(
        null=True, blank=True, editable=False,
        help_text="When the key last authenticated a request (updated at most once a minute).",
    )

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "storefront API key"
        verbose_name_plural = "storefront API keys"


class Product(models.Model):
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="products")
    sku = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    face_value = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, help_text="ISO 4217, e.g. USD, CNY.")
    partner = models.ForeignKey(
        "partners.Partner", null=True, blank=True, on_delete=models.PROTECT,
        related_name="products", help_text="The partner brand that supplies or honours it.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
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
        IMPORTED = "imported"
        GENERATED = "generated"

    class Status(models.TextChoices):
        ACTIVE = "active"
        PAUSED = "paused"
        VOID = "void"

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="batches")
    reference = models.CharField(
        max_length=200, blank=True, help_text="Supplier's reference or file name."
    )
    source = models.CharField(max_length=16, choices=Source.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)
    case_sensitive = models.BooleanField(
        default=False, help_text="Whether codes differ by letter case (normalisation folds case if not)."
    )
    format = models.JSONField(
        default=dict, blank=True,
        help_text="Generation settings (length, alphabet, prefix, grouping, check character).",
    )
    size = models.PositiveIntegerField(default=0, help_text="Codes loaded into this batch.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "batches"
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
        RESERVED = "reserved"
        ISSUED = "issued"
        REVIEW = "review"
        CANCELLED = "cancelled"
        EXPIRED = "expired"
        DENIED = "denied"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    storefront = models.ForeignKey(Storefront, on_delete=models.PROTECT, related_name="issuances")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="issuances")
    quantity = models.PositiveSmallIntegerField()
    customer = models.CharField(max_length=128, blank=True)
    order_ref = models.CharField(max_length=128, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    reserved_until = models.DateTimeField(null=True, blank=True)
    context = models.JSONField(default=dict, blank=True, help_text="End-customer ip, device, email.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
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
        AVAILABLE = "available"
        RESERVED = "reserved"
        ISSUED = "issued"
        REDEEMED = "redeemed"
        VOID = "void"

    # No index of its own: code_batch_state_idx (batch, state) serves every batch lookup,
    # and one index less is one write less per imported or voided code.
    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="codes", db_index=False)
    ciphertext = models.BinaryField(help_text="AES-256-GCM ciphertext with its tag.")
    nonce = models.BinaryField(max_length=12)
    key_id = models.CharField(max_length=32)
    blind_index = models.BinaryField(max_length=32, unique=True)
    last4 = models.CharField(max_length=4)
    serial = models.CharField(max_length=64, null=True, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="The supplier's own expiry for this code, if any."
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.AVAILABLE)
    issuance = models.ForeignKey(
        Issuance, null=True, blank=True, on_delete=models.PROTECT, related_name="codes"
    )
    state_changed_at = models.DateTimeField(null=True, blank=True)
    redeemed_at = models.DateTimeField(null=True, blank=True)
    is_canary = models.BooleanField(
        default=False,
        help_text="A planted code that is never issued; any use of it means stock leaked.",
    )

    class Meta:
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

    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    code = models.ForeignKey(Code, null=True, blank=True, on_delete=models.PROTECT, related_name="events")
    issuance = models.ForeignKey(
        Issuance, null=True, blank=True, on_delete=models.PROTECT, related_name="events"
    )
    action = models.CharField(max_length=32)
    from_state = models.CharField(max_length=16, blank=True)
    to_state = models.CharField(max_length=16, blank=True)
    actor = models.CharField(max_length=64, help_text="user:<id>, storefront:<id>, partner:<id> or system.")
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["code", "id"], name="codeevent_code_idx")]

    def __str__(self) -> str:
        return f"{self.action} {self.from_state}->{self.to_state} by {self.actor}"


class StockCounter(models.Model):
    """One shard of a per-batch, per-state code count.

    Stock is read by summing a batch's shards; a claim updates one random shard, so
    concurrent claims rarely touch the same row (see docs/stock.md).
    """

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="stock_counters")
    state = models.CharField(max_length=16, choices=Code.State.choices)
    shard = models.PositiveSmallIntegerField()
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["batch", "state", "shard"], name="stockcounter_unique"),
        ]

    def __str__(self) -> str:
        return f"batch {self.batch_id} {self.state}[{self.shard}] = {self.count}"


class Redemption(models.Model):
    """A code redeemed once; a reversal makes the code redeemable again."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.ForeignKey(Code, on_delete=models.PROTECT, related_name="redemptions")
    storefront = models.ForeignKey(
        Storefront, null=True, blank=True, on_delete=models.PROTECT, related_name="redemptions"
    )
    partner = models.ForeignKey(
        "partners.Partner", null=True, blank=True, on_delete=models.PROTECT, related_name="redemptions"
    )
    order_ref = models.CharField(max_length=128, blank=True)
    location = models.CharField(max_length=128, blank=True)
    redeemed_at = models.DateTimeField()
    reversed_at = models.DateTimeField(null=True, blank=True)
    reversal_reason = models.CharField(max_length=500, blank=True)

    class Meta:
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
        IN_PROGRESS = "in_progress"
        DONE = "done"

    caller = models.CharField(max_length=64)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=State.choices, default=State.IN_PROGRESS)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
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
        IMPORT = "import"
        GENERATE = "generate"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="load_jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    params = models.JSONField(default=dict, blank=True, help_text="The load's settings (no code).")
    filename = models.CharField(max_length=255, blank=True, help_text="The uploaded file's name.")
    stored_file = models.CharField(max_length=255, blank=True, help_text="Where the upload waits.")
    total = models.PositiveBigIntegerField(null=True, blank=True, help_text="Rows or codes to load.")
    processed = models.PositiveBigIntegerField(default=0)
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    imported = models.PositiveBigIntegerField(default=0)
    skipped = models.PositiveBigIntegerField(default=0)
    bad_rows = models.PositiveBigIntegerField(default=0)
    report = models.JSONField(default=list, blank=True, help_text="[line, reason] of bad rows.")
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
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
