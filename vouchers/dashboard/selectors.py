"""The dashboard's figures for one merchant, each from the cheapest source that is exact.

- Stock (in stock now, by state, claim and redemption rates): the sharded stock
  counters, a few rows per batch, whatever the number of codes.
- Issued, redeemed, reversed per day: the daily roll-up up to its watermark, plus the
  code events above the watermark (a short live tail), so the figures are exact now.
- Fraud decisions per day: the same, from risk assessments.
- Review queue, fraud events in 24 h, expiring batches: indexed queries on small sets.
- Codes expiring by their own date (an imported expiry column) before their batch's
  end: per-day figures a beat task rebuilds every 5 minutes from a partial index of the
  codes with an expiry that are still available or sold (dashboard migration 0002).

Days are UTC days.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Case, Count, IntegerField, Min, Q, Sum, Value, When
from django.utils import timezone

from fraud.models import FraudEvent, Outcome, RiskAssessment
from vouchers.dashboard import rollup
from vouchers.dashboard.models import (
    DailyCodeFigure,
    DailyDecisionFigure,
    ExpiringCodeFigure,
    MerchantAlertSetting,
    ProductAlertSetting,
)
from vouchers.dashboard.partners import PartnerBalance, partner_balances
from vouchers.models import Batch, Code, CodeEvent, Issuance, Merchant, Product, StockCounter
from vouchers.selectors import sellable_batches_q

CHART_DAYS = 30
WINDOWS = (1, 7, 30)  # today, last 7 days, last 30 days (each including today)
EXPIRY_HORIZONS = (7, 30)
# The beat task rebuilds the expiring-code figures every 5 minutes; older than this, the
# dashboard counts from the codes' partial index instead (no beat running).
EXPIRING_CODES_STALE = timedelta(minutes=15)
METRICS = tuple(DailyCodeFigure.Metric.values)


@dataclass
class ProductFigures:
    product: Product
    in_stock: int  # available codes of sellable batches: what can be sold now
    by_state: dict[str, int]
    loaded: int
    low_stock_threshold: int

    @property
    def sold(self) -> int:
        return self.by_state[Code.State.ISSUED] + self.by_state[Code.State.REDEEMED]

    @property
    def claim_rate(self) -> float | None:
        """Codes sold (issued, redeemed included) over codes loaded."""
        return self.sold / self.loaded if self.loaded else None

    @property
    def redemption_rate(self) -> float | None:
        """Codes redeemed over codes sold."""
        return self.by_state[Code.State.REDEEMED] / self.sold if self.sold else None

    @property
    def below_threshold(self) -> bool:
        return self.low_stock_threshold > 0 and self.in_stock < self.low_stock_threshold


@dataclass
class ExpiringBatch:
    batch: Batch
    valid_until: datetime  # the batch's end, or the earliest own expiry of the codes counted
    in_stock: int  # unsold codes that will be wasted
    unredeemed: int  # sold codes not yet redeemed
    own_expiry: bool = False  # codes expiring by their own date before their batch ends

    @property
    def within_7_days(self) -> bool:
        return self.valid_until <= timezone.now() + timedelta(days=7)


@dataclass
class Dashboard:
    merchant: Merchant
    today: date
    in_stock: int
    totals: dict[str, dict[int, int]]  # metric -> window (days) -> count
    products: list[ProductFigures]
    review_waiting: int
    fraud_events_24h: dict[str, int]
    expiring: list[ExpiringBatch]
    expiring_counts: dict[int, dict[str, int]]  # horizon -> {"in_stock", "unredeemed", "batches"}
    daily: dict[str, list[int]]  # metric -> counts for each of the CHART_DAYS days, oldest first
    decisions_daily: dict[str, list[int]]  # outcome -> counts per day
    days: list[date]
    expiring_horizon_days: int
    partners: list[PartnerBalance] | None = field(default=None)

    @property
    def low_stock(self) -> list[ProductFigures]:
        return [p for p in self.products if p.below_threshold]


def stock_by_product(merchant_id: int, *, now: datetime) -> dict[int, dict[str, int]]:
    """{product_id: {state: count}} over all of the merchant's batches, from the counters."""
    result: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(Code.State.values, 0))
    rows = (
        StockCounter.objects.filter(batch__product__merchant_id=merchant_id)
        .values("batch__product_id", "state").annotate(total=Sum("count")).order_by()
    )
    for row in rows:
        result[row["batch__product_id"]][row["state"]] = row["total"]
    return result


def sellable_stock_by_product(merchant_id: int, *, now: datetime) -> dict[int, int]:
    rows = (
        StockCounter.objects.filter(
            batch__product__merchant_id=merchant_id, state=Code.State.AVAILABLE,
            batch__in=Batch.objects.filter(sellable_batches_q(now)),
        )
        .values("batch__product_id").annotate(total=Sum("count")).order_by()
    )
    return {row["batch__product_id"]: row["total"] for row in rows}


def daily_code_figures(merchant_id: int, *, since: date) -> Counter:
    """{(day, metric): n} for the merchant from `since` on: roll-up below the watermark + live tail."""
    mark = rollup.watermark(rollup.CODE_EVENTS)
    figures: Counter = Counter()
    rows = (
        DailyCodeFigure.objects.filter(batch__product__merchant_id=merchant_id, day__gte=since)
        .values("day", "metric").annotate(total=Sum("count")).order_by()
    )
    for row in rows:
        figures[(row["day"], row["metric"])] += row["total"]
    batch_ids = Batch.objects.filter(product__merchant_id=merchant_id).values("pk")
    tail = rollup.code_event_figures(CodeEvent.objects.filter(pk__gt=mark, batch_id__in=batch_ids))
    for (day, _batch, metric), n in tail.items():
        if day >= since:
            figures[(day, metric)] += n
    return figures


def daily_decision_figures(merchant_id: int, *, since: date) -> Counter:
    mark = rollup.watermark(rollup.RISK_ASSESSMENTS)
    figures: Counter = Counter()
    rows = DailyDecisionFigure.objects.filter(merchant_id=merchant_id, day__gte=since).values(
        "day", "outcome", "count"
    )
    for row in rows:
        figures[(row["day"], row["outcome"])] += row["count"]
    tail = rollup.decision_figures(RiskAssessment.objects.filter(pk__gt=mark, merchant_id=merchant_id))
    for (day, _merchant, outcome), n in tail.items():
        if day >= since:
            figures[(day, outcome)] += n
    return figures


def expiring_batches(merchant_id: int, *, now: datetime, horizon_days: int) -> list[ExpiringBatch]:
    """What expires within `horizon_days` and still holds unsold or unredeemed codes, soonest first.

    A batch (not void) whose validity ends within the horizon counts with all its codes
    (from its stock counters); in any other batch, the codes whose own expiry falls within
    the horizon count (`expiring_codes`).
    """
    until = now + timedelta(days=horizon_days)
    batches = list(
        Batch.objects.filter(
            product__merchant_id=merchant_id, valid_until__gt=now, valid_until__lte=until,
        ).exclude(status=Batch.Status.VOID).select_related("product").order_by("valid_until", "pk")
    )
    stock: dict[int, Counter] = defaultdict(Counter)
    if batches:
        rows = (
            StockCounter.objects.filter(
                batch_id__in=[b.pk for b in batches], state__in=[Code.State.AVAILABLE, Code.State.ISSUED]
            ).values("batch_id", "state").annotate(total=Sum("count")).order_by()
        )
        for row in rows:
            stock[row["batch_id"]][row["state"]] = row["total"]
    result = [
        ExpiringBatch(
            # valid_until is set: the query above filters on it.
            batch=b, valid_until=b.valid_until, in_stock=stock[b.pk][Code.State.AVAILABLE],  # type: ignore[arg-type]
            unredeemed=stock[b.pk][Code.State.ISSUED],
        )
        for b in batches
    ]
    result += expiring_codes(merchant_id, now=now, horizon_days=horizon_days)
    result.sort(key=lambda e: (e.valid_until, e.batch.pk))
    return [e for e in result if e.in_stock or e.unredeemed]


def expiring_codes(merchant_id: int, *, now: datetime, horizon_days: int) -> list[ExpiringBatch]:
    """Codes whose own expiry falls within the horizon, in batches that do not end within it.

    One row per batch and EXPIRY_HORIZONS band (within 7 days, then 7 to 30 days), dated
    by the band's earliest expiry. Read from the per-day figures the beat task rebuilds
    every few minutes (ExpiringCodeFigure, a few rows per batch); while they are missing
    or older than EXPIRING_CODES_STALE (no beat running), counted from the partial index
    of codes with an expiry instead, whose cost follows the codes expiring soon.
    """
    until = now + timedelta(days=horizon_days)
    batch_ids = (
        Batch.objects.filter(product__merchant_id=merchant_id)
        .exclude(status=Batch.Status.VOID)
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gt=until))
        .values("pk")
    )
    refreshed = rollup.expiring_codes_refreshed_at()
    if refreshed is not None and now - refreshed <= EXPIRING_CODES_STALE:
        # Per day: the band of a day is that of its date; codes of today that expired since
        # the refresh are still counted until the next one.
        first_band_ends = (now + timedelta(days=EXPIRY_HORIZONS[0])).date()
        rows = [
            {"batch_id": row["batch_id"], "state": row["state"], "n": row["count"],
             "first": row["first_expires_at"],
             "band": EXPIRY_HORIZONS[0] if row["day"] <= first_band_ends else horizon_days}
            for row in ExpiringCodeFigure.objects.filter(
                batch_id__in=batch_ids, day__gte=timezone.localdate(now), day__lte=until.date()
            ).values("batch_id", "day", "state", "count", "first_expires_at")
        ]
    else:
        bands = [When(expires_at__lte=now + timedelta(days=d), then=Value(d)) for d in EXPIRY_HORIZONS]
        rows = list(
            Code.objects.filter(
                batch_id__in=batch_ids, state__in=[Code.State.AVAILABLE, Code.State.ISSUED],
                expires_at__gt=now, expires_at__lte=until,
            )
            .annotate(band=Case(*bands, default=Value(horizon_days), output_field=IntegerField()))
            .values("batch_id", "band", "state").annotate(n=Count("*"), first=Min("expires_at")).order_by()
        )
    if not rows:
        return []
    found: dict[tuple[Any, Any], dict] = {}
    for row in rows:
        empty = {"first": row["first"], Code.State.AVAILABLE: 0, Code.State.ISSUED: 0}
        entry = found.setdefault((row["batch_id"], row["band"]), empty)
        entry["first"] = min(entry["first"], row["first"])
        entry[row["state"]] += row["n"]
    batches = Batch.objects.select_related("product").in_bulk({batch_id for batch_id, _band in found})
    return [
        ExpiringBatch(
            batch=batches[batch_id], valid_until=entry["first"], in_stock=entry[Code.State.AVAILABLE],
            unredeemed=entry[Code.State.ISSUED], own_expiry=True,
        )
        for (batch_id, _band), entry in found.items()
    ]


def merchant_dashboard(*, merchant: Merchant, now: datetime | None = None) -> Dashboard:
    """Every figure of the dashboard for `merchant` (about a dozen queries, none over all codes)."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    since = today - timedelta(days=CHART_DAYS - 1)
    days = [since + timedelta(days=i) for i in range(CHART_DAYS)]

    products = list(Product.objects.filter(merchant=merchant).order_by("sku"))
    thresholds = dict(
        ProductAlertSetting.objects.filter(product__merchant=merchant).values_list(
            "product_id", "low_stock_threshold"
        )
    )
    by_state = stock_by_product(merchant.pk, now=now)
    sellable = sellable_stock_by_product(merchant.pk, now=now)
    product_figures = [
        ProductFigures(
            product=p, in_stock=sellable.get(p.pk, 0),
            by_state=by_state.get(p.pk) or dict.fromkeys(Code.State.values, 0),
            loaded=sum((by_state.get(p.pk) or {}).values()), low_stock_threshold=thresholds.get(p.pk, 0),
        )
        for p in products
    ]

    figures = daily_code_figures(merchant.pk, since=since)
    totals = {
        metric: {
            window: sum(figures[(today - timedelta(days=i), metric)] for i in range(window))
            for window in WINDOWS
        }
        for metric in METRICS
    }
    daily = {metric: [figures[(day, metric)] for day in days] for metric in METRICS}
    decisions = daily_decision_figures(merchant.pk, since=since)
    decisions_daily = {outcome: [decisions[(day, outcome)] for day in days] for outcome in Outcome.values}

    review_waiting = Issuance.objects.filter(
        storefront__merchant=merchant, status=Issuance.Status.REVIEW
    ).count()
    fraud_rows = (
        FraudEvent.objects.filter(merchant=merchant, created_at__gte=now - timedelta(hours=24))
        .values("severity").annotate(n=Count("id")).order_by()
    )
    fraud_24h = dict.fromkeys(FraudEvent.Severity.values, 0)
    fraud_24h.update({row["severity"]: row["n"] for row in fraud_rows})

    setting = MerchantAlertSetting.objects.filter(merchant=merchant).first()
    horizon = setting.expiring_horizon_days if setting else MerchantAlertSetting._meta.get_field(
        "expiring_horizon_days").default
    expiring = expiring_batches(merchant.pk, now=now, horizon_days=max(EXPIRY_HORIZONS))
    expiring_counts = {}
    for days_ahead in EXPIRY_HORIZONS:
        within = [e for e in expiring if e.valid_until <= now + timedelta(days=days_ahead)]
        expiring_counts[days_ahead] = {
            "batches": len(within),
            "in_stock": sum(e.in_stock for e in within),
            "unredeemed": sum(e.unredeemed for e in within),
        }

    return Dashboard(
        merchant=merchant, today=today, in_stock=sum(p.in_stock for p in product_figures),
        totals=totals, products=product_figures, review_waiting=review_waiting,
        fraud_events_24h=fraud_24h, expiring=expiring, expiring_counts=expiring_counts,
        daily=daily, decisions_daily=decisions_daily, days=days, expiring_horizon_days=horizon,
        partners=partner_balances(merchant_id=merchant.pk, now=now),
    )
