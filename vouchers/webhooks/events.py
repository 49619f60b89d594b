"""The event types a webhook endpoint may subscribe to.

Adding an event type is one line here; `webhooks.services.outbox.emit` refuses any
other name, so a typo at a call site fails its tests instead of sending nothing.
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
}

EVENT_CHOICES = [(name, name) for name in EVENT_TYPES]
