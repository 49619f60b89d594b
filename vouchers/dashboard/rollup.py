"""Fold new code events and risk assessments into the daily roll-ups, by watermark.

Why a periodic fold and not a counter bumped by every sale: the storefront's issue and
redeem statements stay exactly as they are (no extra row updated per sale, no new hot
row), and the roll-up can be rebuilt from the append-only events at any time. The
dashboard adds a live tail (rows above the watermark) so its figures are exact now.

An event is folded only once its `created_at` is older than ROLLUP_LAG: ids are handed
out at insert and committed later, so a transaction still open could commit an id below
one already seen. The lag covers any transaction shorter than it (the services' are
milliseconds long). Runs are serialised by locking the watermark row.

Codes expiring by their own date are not events: `refresh_expiring_codes` rebuilds their
per-day counts every few minutes (a beat task) from a partial index instead.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from django.db import transaction
from django.db.models import Case, CharField, Count, Min, Q, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from fraud.models import RiskAssessment
from vouchers.dashboard.models import (
    DailyCodeFigure,
    DailyDecisionFigure,
    ExpiringCodeFigure,
    RollupWatermark,
)
from vouchers.models import Code, CodeEvent

ROLLUP_LAG = timedelta(minutes=2)
CHUNK = 200_000

CODE_EVENTS = "code_events"
RISK_ASSESSMENTS = "risk_assessments"
EXPIRING_CODES = "expiring_codes"  # its watermark row is the refresh's lock; updated_at its time
EXPIRING_HORIZON = timedelta(days=31)  # the dashboard's longest horizon (30 days), and a day more

AVAILABLE, RESERVED, ISSUED, REDEEMED = (
    Code.State.AVAILABLE, Code.State.RESERVED, Code.State.ISSUED, Code.State.REDEEMED,
)

# A code event's figure, by its state change (not its action name, which callers choose):
# sold = stock or a reservation becoming issued; redeemed; a redemption reversed.
ISSUED_Q = Q(to_state=ISSUED, from_state__in=[AVAILABLE, RESERVED])
REDEEMED_Q = Q(to_state=REDEEMED)
REVERSED_Q = Q(from_state=REDEEMED, to_state=ISSUED)
METRIC = Case(
    When(ISSUED_Q, then=Value(DailyCodeFigure.Metric.ISSUED)),
    When(REDEEMED_Q, then=Value(DailyCodeFigure.Metric.REDEEMED)),
    When(REVERSED_Q, then=Value(DailyCodeFigure.Metric.REVERSED)),
    output_field=CharField(),
)


def code_event_figures(events) -> Counter:
    """{(day, batch_id, metric): n} of the code events in `events` (a CodeEvent queryset), in one query."""
    rows = (
        events.filter(code__isnull=False).filter(ISSUED_Q | REDEEMED_Q | REVERSED_Q)
        .annotate(day=TruncDate("created_at"), metric=METRIC)
        .values("day", "batch_id", "metric").annotate(n=Count("id")).order_by()
    )
    return Counter({(row["day"], row["batch_id"], row["metric"]): row["n"] for row in rows})


def decision_figures(assessments) -> Counter:
    """{(day, merchant_id, outcome): n} of the risk assessments in `assessments`, in one query."""
    rows = (
        assessments.annotate(day=TruncDate("created_at"))
        .values("day", "merchant_id", "outcome").annotate(n=Count("id")).order_by()
    )
    return Counter({(row["day"], row["merchant_id"], row["outcome"]): row["n"] for row in rows})


def watermark(source: str) -> int:
    row = RollupWatermark.objects.filter(source=source).values_list("last_id", flat=True).first()
    return row or 0


def _locked_watermark(source: str) -> RollupWatermark:
    RollupWatermark.objects.get_or_create(source=source)
    return RollupWatermark.objects.select_for_update().get(source=source)


def _fold_end(model, *, start: int, cutoff) -> int | None:
    """The highest id to fold now: at most CHUNK past `start`, and not newer than `cutoff`."""
    last = (
        model.objects.filter(pk__gt=start, pk__lte=start + CHUNK, created_at__lte=cutoff)
        .order_by("-pk").values_list("pk", flat=True).first()
    )
    return last


def _add(model, key_fields: tuple[str, ...], figures: Counter) -> None:
    """Add `figures` {key tuple: n} to the roll-up rows (created when missing)."""
    if not figures:
        return
    days = {key[0] for key in figures}
    existing = {
        tuple(getattr(row, f) for f in key_fields): row
        for row in model.objects.filter(day__in=days)
        if tuple(getattr(row, f) for f in key_fields) in figures
    }
    new_rows = []
    for key, n in figures.items():
        row = existing.get(key)
        if row is None:
            new_rows.append(model(**dict(zip(key_fields, key, strict=True)), count=n))
        else:
            model.objects.filter(pk=row.pk).update(count=row.count + n)
    model.objects.bulk_create(new_rows)


def fold_code_events(*, now=None) -> int:
    """Fold one chunk of code events older than the lag; returns how many ids it moved past."""
    return _fold_chunk(CODE_EVENTS, CodeEvent, code_event_figures, DailyCodeFigure,
                       ("day", "batch_id", "metric"), now=now)


def fold_risk_assessments(*, now=None) -> int:
    """Fold one chunk of risk assessments older than the lag; returns how many ids it moved past."""
    return _fold_chunk(RISK_ASSESSMENTS, RiskAssessment, decision_figures, DailyDecisionFigure,
                       ("day", "merchant_id", "outcome"), now=now)


@transaction.atomic
def _fold_chunk(source: str, model, figures_of, rollup, key_fields: tuple[str, ...], *, now=None) -> int:
    """Add the figures of `model`'s rows past `source`'s watermark (one CHUNK at most, older
    than the lag) to the `rollup` table, and move the watermark past them, in one transaction."""
    cutoff = (now or timezone.now()) - ROLLUP_LAG
    mark = _locked_watermark(source)
    end = _fold_end(model, start=mark.last_id, cutoff=cutoff)
    if end is None:
        return 0
    figures = figures_of(model.objects.filter(pk__gt=mark.last_id, pk__lte=end))
    _add(rollup, key_fields, figures)
    moved = end - mark.last_id
    mark.last_id = end
    mark.save(update_fields=["last_id", "updated_at"])
    return moved


def fold_all(*, now=None, max_chunks: int = 50) -> dict[str, int]:
    """Fold until caught up (or `max_chunks` chunks per source); one transaction per chunk."""
    moved = {CODE_EVENTS: 0, RISK_ASSESSMENTS: 0}
    for source, fold in ((CODE_EVENTS, fold_code_events), (RISK_ASSESSMENTS, fold_risk_assessments)):
        for _ in range(max_chunks):
            step = fold(now=now)
            if not step:
                break
            moved[source] += step
    return moved


@transaction.atomic
def refresh_expiring_codes(*, now=None) -> int:
    """Rebuild ExpiringCodeFigure: codes still available or sold whose own expiry is in the next 31 days.

    One grouped query over the partial index of codes with an expiry (an index-only scan),
    then the table is replaced in the same transaction, so a reader sees the old or the
    new figures, never a mix. Safe to run twice (the watermark row is locked). Returns
    the number of rows written.
    """
    now = now or timezone.now()
    mark = _locked_watermark(EXPIRING_CODES)
    rows = (
        Code.objects.filter(
            state__in=[Code.State.AVAILABLE, Code.State.ISSUED],
            expires_at__gt=now, expires_at__lte=now + EXPIRING_HORIZON,
        )
        .annotate(day=TruncDate("expires_at"))
        .values("batch_id", "day", "state").annotate(n=Count("*"), first=Min("expires_at")).order_by()
    )
    figures = [
        ExpiringCodeFigure(batch_id=row["batch_id"], day=row["day"], state=row["state"], count=row["n"],
                           first_expires_at=row["first"])
        for row in rows
    ]
    ExpiringCodeFigure.objects.all().delete()
    ExpiringCodeFigure.objects.bulk_create(figures)
    mark.save(update_fields=["updated_at"])
    return len(figures)


def expiring_codes_refreshed_at():
    """When the expiring-code figures were last rebuilt, or None if never."""
    return RollupWatermark.objects.filter(source=EXPIRING_CODES).values_list("updated_at", flat=True).first()
