"""Low-stock and expiring-soon alerts: the merchant's staff are told once per crossing.

A crossing opens one StockAlert row (a partial unique constraint allows one open alert
per product or batch) and the staff are e-mailed; when the condition clears the alert is
closed, so the next crossing is a new alert. Run by the beat task `check_stock_alerts`;
safe to run twice (the open row is the marker).

These alerts are for the merchant's staff (per-product thresholds, per-merchant horizon).
Storefronts learn of low stock and expiring batches from the `stock.low` and
`codes.expiring` webhooks, which have one source: the scan of
`vouchers.webhooks.services.stock_events` (its own thresholds, only for subscribed
endpoints). Nothing here writes to the webhook outbox, so no event is sent twice.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from vouchers.dashboard.models import MerchantAlertSetting, ProductAlertSetting, StockAlert
from vouchers.dashboard.selectors import expiring_batches
from vouchers.models import Merchant, MerchantStaff
from vouchers.selectors import available_by_product

logger = logging.getLogger(__name__)

DEFAULT_HORIZON_DAYS = MerchantAlertSetting._meta.get_field("expiring_horizon_days").default


def staff_emails(merchant_id: int) -> list[str]:
    return sorted(
        MerchantStaff.objects.filter(merchant_id=merchant_id, user__is_active=True)
        .exclude(user__email="").values_list("user__email", flat=True)
    )


def _notify(alert: StockAlert) -> None:
    recipients = staff_emails(alert.merchant_id)
    base = getattr(settings, "CONSOLE_BASE_URL", "")
    product, batch = alert.product, alert.batch
    if alert.kind == StockAlert.Kind.LOW_STOCK:
        assert product is not None  # a low-stock alert is about a product
        subject = _("[%(merchant)s] Low stock: %(sku)s has %(level)s codes left") % {
            "merchant": alert.merchant.name, "sku": product.sku, "level": alert.level,
        }
        body = _("Codes in stock of %(product)s: %(level)s, below the threshold of %(threshold)s.") % {
            "product": alert.product, "level": alert.level, "threshold": alert.threshold,
        }
        link = base + reverse("admin:vouchers_batch_changelist") + f"?product__id__exact={alert.product_id}"
    else:
        assert batch is not None  # an expiry alert is about a batch
        subject = _("[%(merchant)s] Batch %(batch)s of %(sku)s ends on %(day)s") % {
            "merchant": alert.merchant.name, "batch": alert.batch_id, "sku": batch.product.sku,
            "day": f"{batch.valid_until:%Y-%m-%d}",
        }
        body = _("%(level)s codes of batch %(batch)s are unsold or unredeemed and stop being valid on "
                 "%(when)s UTC (within %(days)s days). Extend its validity or sell them first.") % {
            "level": alert.level, "batch": alert.batch_id,
            "when": f"{batch.valid_until:%Y-%m-%d %H:%M}", "days": alert.threshold,
        }
        link = base + reverse("admin:vouchers_batch_change", args=[alert.batch_id])
    if recipients:
        send_mail(subject, f"{body}\n\n{link}\n", None, recipients)
    alert.notified_at = timezone.now()
    alert.save(update_fields=["notified_at"])


def _open(**fields) -> StockAlert | None:
    """Open an alert unless one is open already (the constraint decides); notify in the same transaction."""
    try:
        with transaction.atomic():
            alert = StockAlert.objects.create(**fields)
            _notify(alert)
    except IntegrityError:
        return None
    return alert


def check_low_stock(*, now: datetime) -> list[StockAlert]:
    settings_rows = list(
        ProductAlertSetting.objects.filter(low_stock_threshold__gt=0).select_related("product__merchant")
    )
    stock = available_by_product([s.product_id for s in settings_rows], now=now)
    opened = []
    open_ids = set(
        StockAlert.objects.filter(kind=StockAlert.Kind.LOW_STOCK, cleared_at__isnull=True)
        .values_list("product_id", flat=True)
    )
    below = set()
    for setting in settings_rows:
        level = stock.get(setting.product_id, 0)
        if level >= setting.low_stock_threshold:
            continue
        below.add(setting.product_id)
        if setting.product_id in open_ids:
            continue
        alert = _open(
            merchant=setting.product.merchant, kind=StockAlert.Kind.LOW_STOCK, product=setting.product,
            level=level, threshold=setting.low_stock_threshold, raised_at=now,
        )
        if alert:
            opened.append(alert)
    StockAlert.objects.filter(
        kind=StockAlert.Kind.LOW_STOCK, cleared_at__isnull=True, product_id__in=open_ids - below
    ).update(cleared_at=now)
    return opened


def check_expiring(*, now: datetime) -> list[StockAlert]:
    horizons = dict(MerchantAlertSetting.objects.values_list("merchant_id", "expiring_horizon_days"))
    opened = []
    still = set()
    for merchant in Merchant.objects.order_by("pk"):
        horizon = horizons.get(merchant.pk, DEFAULT_HORIZON_DAYS)
        if not horizon:
            continue
        for item in expiring_batches(merchant.pk, now=now, horizon_days=horizon):
            still.add(item.batch.pk)
            alert = None
            if not StockAlert.objects.filter(
                kind=StockAlert.Kind.EXPIRING, batch=item.batch, cleared_at__isnull=True
            ).exists():
                alert = _open(
                    merchant=merchant, kind=StockAlert.Kind.EXPIRING, batch=item.batch,
                    product=item.batch.product, level=item.in_stock + item.unredeemed, threshold=horizon,
                    raised_at=now,
                )
            if alert:
                opened.append(alert)
    StockAlert.objects.filter(kind=StockAlert.Kind.EXPIRING, cleared_at__isnull=True).exclude(
        batch_id__in=still
    ).update(cleared_at=now)
    return opened


def check_alerts(*, now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    low = check_low_stock(now=now)
    expiring = check_expiring(now=now)
    if low or expiring:
        logger.info("stock alerts raised: %s low stock, %s expiring", len(low), len(expiring))
    return {"low_stock": len(low), "expiring": len(expiring)}


