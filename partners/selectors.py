"""Reads of settlement used by more than one caller (the vouchers services among them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, Min, Q, Sum
from django.utils import timezone

from partners.models import Agreement, AgreementVersion, LedgerEntry, Statement
from partners.periods import period_end, period_start


def partner_honours_product(*, partner_id: int, product_id: int) -> bool:
    """Whether an agreement version of the partner covers the product now (one query).

    A partner key may check, redeem and reverse only codes of such products.
    """
    now = timezone.now()
    return (
        AgreementVersion.objects.filter(
            agreement__partner_id=partner_id, products=product_id, valid_from__lte=now
        )
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gt=now))
        .exists()
    )


# A late entry (its transaction began before a period ended and committed after the
# period's statement was closed) is not on that statement; the next statement takes it.
# Such an entry occurred shortly before the closed period's end: entries that occurred
# earlier than this margin before it and are on no statement would break the invariant
# that a closed period's entries are on a statement, so the open-period read looks no
# further back and stays on the (agreement, occurred_at) index.
LATE_ENTRY_MARGIN = timedelta(days=1)


@dataclass(frozen=True)
class OpenBalance:
    """What one agreement's entries on no statement yet add up to (positive: owed to the partner)."""

    agreement_id: int
    partner_id: int
    partner_name: str
    currency: str
    timezone: str
    period: str
    since: datetime  # start (UTC) of the first period not closed yet
    until: datetime  # end (UTC, exclusive) of the period running now
    amount_minor: int
    entries: int


def open_period_balances(*, merchant_id: int, now: datetime | None = None) -> list[OpenBalance]:
    """One row per agreement of the merchant: the signed sum of its ledger entries on no statement.

    The open period runs from the end of the agreement's last statement (or, with no
    statement yet, from the start of the period of its first entry, or of now) to the end
    of the period running now. Three queries whatever the ledger's size: the agreements,
    their last statements' ends, and one sum over the index on (agreement, occurred_at).
    """
    now = now or timezone.now()
    agreements = list(
        Agreement.objects.filter(merchant_id=merchant_id).select_related("partner")
        .order_by("partner__name", "currency", "pk")
    )
    if not agreements:
        return []
    closed_until = dict(
        Statement.objects.filter(merchant_id=merchant_id).values("agreement_id")
        .annotate(end=Max("period_end")).values_list("agreement_id", "end").order_by()
    )
    scope = Q()
    for agreement in agreements:
        if agreement.pk in closed_until:
            bound = closed_until[agreement.pk] - LATE_ENTRY_MARGIN
            scope |= Q(agreement_id=agreement.pk, occurred_at__gte=bound)
        else:
            scope |= Q(agreement_id=agreement.pk)
    sums = {
        row["agreement_id"]: row
        for row in LedgerEntry.objects.filter(scope, merchant_id=merchant_id, line__isnull=True)
        .values("agreement_id").annotate(total=Sum("amount_minor"), n=Count("id"), first=Min("occurred_at"))
        .order_by()
    }
    balances = []
    for agreement in agreements:
        row = sums.get(agreement.pk, {})
        since = closed_until.get(agreement.pk) or period_start(
            min(row.get("first") or now, now), period=agreement.period, tz=agreement.timezone
        )
        current = period_start(now, period=agreement.period, tz=agreement.timezone)
        balances.append(OpenBalance(
            agreement_id=agreement.pk, partner_id=agreement.partner_id, partner_name=agreement.partner.name,
            currency=agreement.currency, timezone=agreement.timezone, period=agreement.period, since=since,
            until=period_end(max(current, since), period=agreement.period, tz=agreement.timezone),
            amount_minor=row.get("total") or 0, entries=row.get("n") or 0,
        ))
    return balances
