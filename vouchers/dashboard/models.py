"""Daily roll-ups behind the dashboard, and the alert settings and their crossings.

The roll-ups are maintained by a periodic task from the append-only code events and
risk assessments (watermark by id), never by the storefront's own transactions: see
docs/console.md.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class DailyCodeFigure(models.Model):
    """How many codes of one batch were issued, redeemed or had a redemption reversed on one day (UTC)."""

    class Metric(models.TextChoices):
        ISSUED = "issued", _("issued")
        REDEEMED = "redeemed", _("redeemed")
        REVERSED = "reversed", _("reversal")

    day = models.DateField()
    batch = models.ForeignKey("vouchers.Batch", on_delete=models.CASCADE, related_name="+")
    metric = models.CharField(max_length=16, choices=Metric.choices)
    count = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("daily code figure")
        verbose_name_plural = _("daily code figures")
        constraints = [
            models.UniqueConstraint(fields=["day", "batch", "metric"], name="dailycodefigure_unique"),
        ]
        indexes = [models.Index(fields=["batch", "day"], name="dailycodefigure_batch_day_idx")]

    def __str__(self) -> str:
        return f"{self.day} batch {self.batch_id} {self.metric}: {self.count}"


class DailyDecisionFigure(models.Model):
    """How many fraud decisions of one outcome a merchant's requests got on one day (UTC)."""

    day = models.DateField()
    merchant = models.ForeignKey("vouchers.Merchant", on_delete=models.CASCADE, related_name="+")
    outcome = models.CharField(max_length=8)
    count = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("daily fraud decision figure")
        verbose_name_plural = _("daily fraud decision figures")
        constraints = [
            models.UniqueConstraint(fields=["day", "merchant", "outcome"], name="dailydecisionfigure_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.day} merchant {self.merchant_id} {self.outcome}: {self.count}"


class RollupWatermark(models.Model):
    """The id of the last source row (code event, risk assessment) folded into the roll-ups."""

    source = models.CharField(max_length=32, unique=True)
    last_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("roll-up watermark")
        verbose_name_plural = _("roll-up watermarks")

    def __str__(self) -> str:
        return f"{self.source} up to {self.last_id}"


class ExpiringCodeFigure(models.Model):
    """How many codes of one batch, still available or sold, expire by their own date on one day (UTC).

    Rebuilt whole by a periodic task (rollup.refresh_expiring_codes) from the partial index
    of codes with an expiry: the dashboard reads these few rows instead of counting codes.
    """

    batch = models.ForeignKey("vouchers.Batch", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    state = models.CharField(max_length=16)
    count = models.BigIntegerField(default=0)
    first_expires_at = models.DateTimeField()

    class Meta:
        verbose_name = _("expiring code figure")
        verbose_name_plural = _("expiring code figures")
        constraints = [
            models.UniqueConstraint(fields=["batch", "day", "state"], name="expiringcodefigure_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.day} batch {self.batch_id} {self.state}: {self.count}"


class ProductAlertSetting(models.Model):
    """A product's low-stock threshold: below it (codes in stock now), its merchant's staff are told."""

    product = models.OneToOneField(
        "vouchers.Product", on_delete=models.CASCADE, related_name="alert_setting"
    )
    low_stock_threshold = models.PositiveIntegerField(
        default=0, verbose_name=_("low-stock threshold"),
        help_text=_("Warn the merchant's staff when codes in stock fall below this number (0: never)."),
    )

    class Meta:
        verbose_name = _("stock alert setting")
        verbose_name_plural = _("stock alert settings")

    def __str__(self) -> str:
        return f"{self.product}: {self.low_stock_threshold}"


class MerchantAlertSetting(models.Model):
    """A merchant's "expiring soon" horizon: batches whose validity ends within it are flagged."""

    merchant = models.OneToOneField(
        "vouchers.Merchant", on_delete=models.CASCADE, related_name="alert_setting"
    )
    expiring_horizon_days = models.PositiveIntegerField(
        default=14, verbose_name=_("expiring-soon horizon (days)"),
        help_text=_("Warn the staff when a batch with unsold or unredeemed codes ends within this many days "
                    "(0: never)."),
    )

    class Meta:
        verbose_name = _("expiry alert setting")
        verbose_name_plural = _("expiry alert settings")

    def __str__(self) -> str:
        return f"{self.merchant}: {self.expiring_horizon_days} days"


class StockAlert(models.Model):
    """One crossing of a threshold, open until the condition clears: staff are told once per crossing.

    At most one open alert per (kind, subject): the next crossing needs the condition to
    clear first (the alert is then closed) and to come back.
    """

    class Kind(models.TextChoices):
        LOW_STOCK = "low_stock", _("low stock")
        EXPIRING = "expiring", _("expiring soon")

    merchant = models.ForeignKey("vouchers.Merchant", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    product = models.ForeignKey(
        "vouchers.Product", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    batch = models.ForeignKey(
        "vouchers.Batch", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    level = models.BigIntegerField(
        help_text=_("Codes in stock (low stock) or codes left (expiring) when raised.")
    )
    threshold = models.BigIntegerField()
    raised_at = models.DateTimeField()
    notified_at = models.DateTimeField(null=True, blank=True)
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("stock alert")
        verbose_name_plural = _("stock alerts")
        ordering = ["-raised_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "product"], condition=models.Q(cleared_at__isnull=True, kind="low_stock"),
                name="stockalert_one_open_low_stock",
            ),
            models.UniqueConstraint(
                fields=["kind", "batch"], condition=models.Q(cleared_at__isnull=True, kind="expiring"),
                name="stockalert_one_open_expiring",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"
