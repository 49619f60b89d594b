"""What a voucher service tells the fraud checks about one request.

The fraud checks never read the voucher service's tables: whatever they need to know
about the customer's history or the code in hand comes in here, filled by the caller
(`vouchers.services.risk`; docs/architecture.md, "The dependency rule").
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Protocol

ACTIONS = ("issue", "redeem", "check")


class PreviousOrders(Protocol):
    """Counts a customer's completed orders at a merchant, stopping at `at_most`.

    Asked only when a first-orders rule needs the answer (most attempts never do), so
    handing it over costs nothing; `at_most` bounds what the count reads.
    """

    def __call__(self, *, merchant_id: int, customer: str, at_most: int) -> int: ...


@dataclass(frozen=True)
class RiskContext:
    """One issuance, redemption or check as the fraud checks see it.

    `ip` is the end customer's address as the storefront sent it in the body ("" if
    absent), never the connection address: that is the storefront's own server, shared
    by all its customers. No field may hold a code.

    `merchant_id` is None only when the caller has no merchant of its own (a partner)
    and the code was not found: lockouts and the guessing alarm then count under "no
    merchant", and their events alert ADMINS. `assess` needs a merchant.

    `previous_orders` is how the caller counts the customer's earlier orders (None: the
    caller knows no history, so every customer is new). It is not part of the stored
    context.
    """

    merchant_id: int | None  # None only for a partner caller before its code is found
    action: str  # "issue" | "redeem" | "check"
    api_key_id: str  # the caller's API key id, "" if none
    storefront_id: int | None = None
    partner_id: int | None = None
    customer: str = ""
    ip: str = ""
    device_id: str = ""
    email: str = ""
    product_id: int | None = None
    quantity: int = 1
    previous_orders: PreviousOrders | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, not {self.action!r}")
        if self.quantity < 1:
            raise ValueError("quantity must be at least 1")

    def as_json(self) -> dict:
        """The context as stored on assessments and events (it holds no code)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _NOT_STORED}


_NOT_STORED = frozenset({"previous_orders"})


@dataclass(frozen=True)
class CodeFacts:
    """What the fraud checks may know of a code in hand: ids, last 4 characters, state. Never the code."""

    code_id: int
    batch_id: int
    last4: str
    state: str

    def as_json(self) -> dict:
        """The code's fields of a leak event's context."""
        return {"code_id": self.code_id, "code_last4": self.last4, "code_state": self.state}
