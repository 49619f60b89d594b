"""Money as integers of a currency's minor unit (ISO 4217 exponents).

A price becomes an amount once, where a ledger entry is written, rounded half-even
to the currency's exponent; afterwards amounts are only added. People and APIs see
a decimal string with exactly the currency's digits ("12.50" USD, "1250" JPY,
"1.250" KWD).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

# ISO 4217 minor-unit exponents that differ from 2; every other currency has 2.
_EXPONENTS = {
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
    "CLF": 4,
    "UYW": 4,
}


def exponent(currency: str) -> int:
    """The number of minor-unit digits of an ISO 4217 currency code."""
    return _EXPONENTS.get(currency.upper(), 2)


def round_to_minor(amount: Decimal, currency: str) -> int:
    """A decimal amount in major units -> integer minor units, rounded half-even, once."""
    scaled = Decimal(amount).scaleb(exponent(currency))
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def to_minor(amount: Decimal | str, currency: str) -> int:
    """An exact decimal in major units -> minor units; refuses a value with too many digits."""
    value = Decimal(amount).scaleb(exponent(currency))
    if value != value.to_integral_value():
        raise ValueError(f"{amount} has more digits than {currency} allows")
    return int(value)


def format_minor(amount_minor: int, currency: str) -> str:
    """Integer minor units -> a decimal string with exactly the currency's digits."""
    digits = exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    magnitude = abs(int(amount_minor))
    if digits == 0:
        return f"{sign}{magnitude}"
    whole, fraction = divmod(magnitude, 10**digits)
    return f"{sign}{whole}.{fraction:0{digits}d}"


def price_minor(
    *,
    face_value: Decimal,
    face_currency: str,
    unit_amount_minor: int | None,
    rate_bps: int | None,
    currency: str,
) -> int:
    """The unsigned price of one event: a fixed unit amount, or basis points of face value.

    A rate applies to the face value in the product's own currency, which must be the
    agreement's; the result is rounded half-even to the currency's exponent, once.
    """
    if unit_amount_minor is not None:
        return int(unit_amount_minor)
    if rate_bps is None:
        raise ValueError("an agreement version has a unit amount or a rate")
    if face_currency.upper() != currency.upper():
        raise ValueError(f"a rate prices face values in {currency}, not {face_currency}")
    return round_to_minor(Decimal(face_value) * Decimal(rate_bps) / Decimal(10000), currency)
