"""Amounts owed to and by partners for the open settlement period, for the dashboard.

Read from the settlement ledger (`partners.selectors.open_period_balances`): per
agreement, that is per partner and currency, the signed sum of the entries on no
statement yet. `partner_balances` returns None for a merchant without any agreement,
and the dashboard then shows no partner section at all (no figure is ever made up).
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from partners.money import format_minor
from partners.selectors import open_period_balances


@dataclass(frozen=True)
class PartnerBalance:
    """One partner's open-period balance with the merchant, in one currency.

    `amount_minor` has the ledger's sign: positive is owed to the partner, negative is
    owed by the partner (the page shows `magnitude` in the column of its side). The
    period runs from `since` to `until` (inclusive), local dates of the agreement's
    time zone.
    """

    partner: str
    currency: str
    amount_minor: int
    since: date
    until: date
    timezone: str
    entries: int

    @property
    def magnitude(self) -> str:
        """The amount without its sign, with exactly the currency's digits ("12.50", "1250")."""
        return format_minor(abs(self.amount_minor), self.currency)


def _local_day(moment: datetime, tz: str) -> date:
    return moment.astimezone(zoneinfo.ZoneInfo(tz)).date()


def partner_balances(*, merchant_id: int, now: datetime | None = None) -> list[PartnerBalance] | None:
    """The merchant's balances with each partner for the open period, or None without agreements."""
    rows = open_period_balances(merchant_id=merchant_id, now=now)
    if not rows:
        return None
    return [
        PartnerBalance(
            partner=row.partner_name, currency=row.currency, amount_minor=row.amount_minor,
            since=_local_day(row.since, row.timezone),
            until=_local_day(row.until - timedelta(microseconds=1), row.timezone),
            timezone=row.timezone, entries=row.entries,
        )
        for row in rows
    ]
