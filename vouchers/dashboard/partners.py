"""Amounts owed to and by partners for the open settlement period, for the dashboard.

The settlement ledger lives in the `partners` app. `partner_balances` is the one
function the dashboard calls: it returns None while there is no settlement data, and
the dashboard then shows no partner section at all (no figure is ever made up).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PartnerBalance:
    """One partner's open-period balance with the merchant, in one currency.

    `amount` is a decimal string with the currency's digits; positive = owed to the
    partner, negative = owed by the partner (the ledger's sign).
    """

    partner: str
    currency: str
    amount: str
    period: str
    entries: int


def partner_balances(*, merchant_id: int) -> list[PartnerBalance] | None:
    """The merchant's balances with each partner for the open period, or None without settlement data.

    Fill in from the settlement ledger once it exists: sum the entries not yet on a
    statement per (partner, currency), format with the currency's exponent, and return
    one PartnerBalance each. Until then there is nothing to show.
    """
    return None
