"""The event types a webhook endpoint may subscribe to, and who can receive each.

Adding an event type is one line here; `webhooks.services.outbox.emit` refuses any
other name, so a typo at a call site fails its tests instead of sending nothing.

A storefront's endpoints receive the events of its sales (and its merchant's stock
and fraud alerts); a partner's endpoints receive its redemptions and its settlement.
An endpoint can subscribe only to the events its owner can receive, so a
subscription that could never fire is refused when it is made, not silently idle.
"""

from __future__ import annotations

EVENT_TYPES: dict[str, str] = {
    "issuance.issued": "Codes were issued to a customer (directly, or by confirming a reservation).",
    "issuance.review_approved": "An issuance held for fraud review was approved; its codes are issued.",
    "issuance.review_denied": "An issuance held for fraud review was denied; its codes went back to stock.",
    "issuance.expired": "A reservation or an undecided review ran out; its codes went back to stock.",
    "code.redeemed": "A code was redeemed.",
    "redemption.reversed": "A redemption was reversed; the code is redeemable again.",
    "stock.low": "A product's stock fell to or below the low-stock threshold.",
    "codes.expiring": "Codes in stock of a batch will expire soon.",
    "fraud.alert": "A fraud event severe enough to alert the merchant was recorded.",
    "statement.issued": "A settlement statement was closed and signed; fetch and verify its document.",
    "dispute.resolved": "A dispute of a settlement statement was accepted (with an adjustment) or rejected.",
}

EVENT_CHOICES = [(name, name) for name in EVENT_TYPES]

# Who can receive each event type ("storefront", "partner").
PARTNER_EVENT_TYPES = frozenset(
    {"code.redeemed", "redemption.reversed", "statement.issued", "dispute.resolved"}
)
STOREFRONT_EVENT_TYPES = frozenset(set(EVENT_TYPES) - {"statement.issued", "dispute.resolved"})
EVENT_TYPES_BY_OWNER: dict[str, frozenset[str]] = {
    "storefront": STOREFRONT_EVENT_TYPES,
    "partner": PARTNER_EVENT_TYPES,
}
