"""`stock.low` and `codes.expiring`: found by a periodic scan (beat), not by the hot path.

Checking stock on every issuance would add a query to every sale; a scan every few
minutes tells a storefront soon enough. Only merchants with an endpoint subscribed
to the event are scanned. Each product's low stock is announced once per
`WEBHOOK_STOCK_LOW_REPEAT_HOURS`, each expiring batch once.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from vouchers import selectors
from vouchers.models import Batch, Code, Product, StockCounter
from vouchers.webhooks.models import WebhookEvent
from vouchers.webhooks.services import outbox, payloads


def emit_stock_low(*, now=None) -> int:
    """One `stock.low` per product at or below the threshold, unless announced recently."""
    now = now or timezone.now()
    threshold = settings.WEBHOOK_STOCK_LOW_THRESHOLD
    recent = now - timedelta(hours=settings.WEBHOOK_STOCK_LOW_REPEAT_HOURS)
    emitted = 0
    for merchant_id in outbox.subscribed_merchants("stock.low"):
        products = list(Product.objects.filter(merchant_id=merchant_id, is_active=True).order_by("pk"))
        available = selectors.available_by_product([p.pk for p in products], now=now)
        announced = set(
            WebhookEvent.objects.filter(type="stock.low", merchant_id=merchant_id, created_at__gte=recent)
            .values_list("ordering_key", flat=True)
        )
        for product in products:
            count = max(available[product.pk], 0)
            key = f"product:{product.pk}"
            if count > threshold or key in announced:
                continue
            with transaction.atomic():
                emitted += outbox.emit(
                    "stock.low", owners=[("merchant", merchant_id)], merchant_id=merchant_id,
                    ordering_key=key,
                    data=lambda product=product, count=count: payloads.stock_low_data(  # type: ignore[misc]
                        product, available=count, threshold=threshold,  # defaults bind the loop's values
                    ),
                ) is not None
    return emitted


def emit_codes_expiring(*, now=None) -> int:
    """One `codes.expiring` per active batch whose window ends within the horizon and holds stock."""
    now = now or timezone.now()
    horizon = now + timedelta(days=settings.WEBHOOK_EXPIRING_WITHIN_DAYS)
    emitted = 0
    for merchant_id in outbox.subscribed_merchants("codes.expiring"):
        batches = list(
            Batch.objects.filter(product__merchant_id=merchant_id, status=Batch.Status.ACTIVE,
                                 valid_until__gt=now, valid_until__lte=horizon)
            .select_related("product").order_by("valid_until", "pk")
        )
        counts = defaultdict(int)
        for row in (StockCounter.objects.filter(batch__in=batches, state=Code.State.AVAILABLE)
                    .values("batch_id").annotate(total=Sum("count"))):
            counts[row["batch_id"]] = row["total"]
        announced = set(
            WebhookEvent.objects.filter(type="codes.expiring", merchant_id=merchant_id)
            .values_list("ordering_key", flat=True)
        )
        for batch in batches:
            key = f"batch:{batch.pk}"
            if counts[batch.pk] <= 0 or key in announced:
                continue
            with transaction.atomic():
                emitted += outbox.emit(
                    "codes.expiring", owners=[("merchant", merchant_id)], merchant_id=merchant_id,
                    ordering_key=key,
                    data=lambda batch=batch, count=counts[batch.pk]: (  # type: ignore[misc]  # defaults bind
                        payloads.codes_expiring_data(batch, available=count)  # the loop's values
                    ),
                ) is not None
    return emitted
