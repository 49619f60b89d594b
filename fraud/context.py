"""What a voucher service tells the fraud checks about one request."""

from __future__ import annotations

from dataclasses import asdict, dataclass

ACTIONS = ("issue", "redeem", "check")


@dataclass(frozen=True)
class RiskContext:
    """One issuance, redemption or check as the fraud checks see it.

    `ip` is the end customer's address as the storefront sent it in the body ("" if
    absent), never the connection address: that is the storefront's own server, shared
    by all its customers. No field may hold a code.

    `merchant_id` is None only when the caller has no merchant of its own (a partner)
    and the code was not found: lockouts and the guessing alarm then count under "no
    merchant", and their events alert ADMINS. `assess` needs a merchant.
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

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, not {self.action!r}")
        if self.quantity < 1:
            raise ValueError("quantity must be at least 1")

    def as_json(self) -> dict:
        """The context as stored on assessments and events (it holds no code)."""
        return asdict(self)
