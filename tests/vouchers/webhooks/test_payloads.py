"""The exact body of every storefront event type, as docs/webhooks.md promises it.

Each event is caused the way the service causes it (the API, a review decision, the
stock scan, a fraud event) at a fixed moment, and its stored payload is compared whole,
as the JSON a delivery sends (so an int turned into a string, or a key renamed, fails).
The settlement events (`statement.issued`, `dispute.resolved`) are pinned the same way
in test_settlement_events.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest

from tests.factories import StaffFactory
from tests.vouchers.webhooks.conftest import make_shop
from vouchers.models import Batch, Code, Issuance, Redemption
from vouchers.services.reservations import expire_reservation
from vouchers.services.reviews import approve_review, deny_review
from vouchers.webhooks.events import STOREFRONT_EVENT_TYPES
from vouchers.webhooks.models import WebhookEvent
from vouchers.webhooks.services import endpoints, outbox, stock_events

pytestmark = pytest.mark.django_db
MOMENT = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
MOMENT_TEXT = "2026-03-01T12:00:00.123456Z"


@pytest.fixture
def shop():
    shop = make_shop(codes=8, sku="GIFT-25", name="Gift card 25", face_value="25.00", currency="EUR")
    endpoints.create_endpoint(url="http://127.0.0.1:9/", events=sorted(STOREFRONT_EVENT_TYPES),
                              storefront=shop.storefront)
    outbox.forget_subscriptions()
    with mock.patch("django.utils.timezone.now", return_value=MOMENT):
        yield shop


def as_sent(value) -> str:
    """The body a delivery sends (webhooks.services.delivery)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def assert_pinned(event: WebhookEvent, event_type: str, data: dict) -> None:
    expected = {"id": str(event.pk), "type": event_type, "created_at": MOMENT_TEXT, "data": data}
    assert event.type == event_type
    assert as_sent(event.payload) == as_sent(expected)


def only(event_type: str) -> WebhookEvent:
    return WebhookEvent.objects.get(type=event_type)


def issuance_body(issuance: Issuance) -> dict:
    issuance.refresh_from_db()
    return {
        "issuance": {"id": str(issuance.pk), "status": issuance.status, "sku": "GIFT-25",
                     "quantity": issuance.quantity, "customer": issuance.customer,
                     "order_ref": issuance.order_ref},
        "codes": [{"id": code.pk, "last4": code.last4} for code in issuance.codes.order_by("pk")],
    }


def held(shop, **fields) -> Issuance:
    response = shop.client.issue("GIFT-25", quantity=2, reserve=True, **fields)
    Issuance.objects.filter(pk=response.json()["id"]).update(status="review")
    return Issuance.objects.get(pk=response.json()["id"])


def test_issuance_events(shop):
    reviewer = StaffFactory(merchant=shop.storefront.merchant).user
    issued = shop.client.issue("GIFT-25", quantity=2, customer="cust-7", order_ref="order-1").json()
    approved, denied, expired = held(shop, order_ref="a"), held(shop, order_ref="d"), held(shop)
    approve_review(issuance_id=approved.pk, reviewer=reviewer, merchant_id=shop.storefront.merchant_id)
    deny_review(issuance_id=denied.pk, reviewer=reviewer, merchant_id=shop.storefront.merchant_id,
                reason="looks wrong")
    Issuance.objects.filter(pk=expired.pk).update(reserved_until=MOMENT - timedelta(seconds=1))
    assert expire_reservation(issuance_id=expired.pk) is True

    issued_body = issuance_body(Issuance.objects.get(pk=issued["id"]))
    assert issued_body["issuance"]["customer"] == "cust-7" and len(issued_body["codes"]) == 2
    assert_pinned(only("issuance.issued"), "issuance.issued", issued_body)
    assert_pinned(only("issuance.review_approved"), "issuance.review_approved", issuance_body(approved))
    # a denied or expired issuance's codes went back to stock: the event names the ones it held
    for event_type, issuance in (("issuance.review_denied", denied), ("issuance.expired", expired)):
        held_codes = Code.objects.filter(events__issuance_id=issuance.pk).distinct()
        codes = sorted(held_codes.values_list("pk", "last4"))
        assert len(codes) == 2
        body = issuance_body(issuance)
        body["codes"] = [{"id": pk, "last4": last4} for pk, last4 in codes]
        assert_pinned(only(event_type), event_type, body)


def test_redemption_events(shop):
    issued = shop.client.issue("GIFT-25").json()
    redeemed = shop.client.redeem(issued["codes"][0]["code"], order_ref="till-4", location="Lyon").json()
    code = Code.objects.get(pk=Redemption.objects.get(pk=redeemed["id"]).code_id)
    body = {
        "redemption": {"id": redeemed["id"], "order_ref": "till-4", "location": "Lyon",
                       "redeemed_at": MOMENT_TEXT, "reversed_at": None,
                       "storefront_id": shop.storefront.pk, "partner_id": None},
        "code": {"id": code.pk, "last4": code.last4, "issuance_id": issued["id"]},
        "sku": "GIFT-25", "face_value": "25.00", "currency": "EUR",
    }
    assert_pinned(only("code.redeemed"), "code.redeemed", body)
    assert shop.client.reverse(redeemed["id"]).status_code == 200
    body["redemption"]["reversed_at"] = MOMENT_TEXT
    assert_pinned(only("redemption.reversed"), "redemption.reversed", body)


def test_stock_and_expiry_events(shop, settings):
    settings.WEBHOOK_STOCK_LOW_THRESHOLD = 8
    batch = shop.product.batches.get()
    Batch.objects.filter(pk=batch.pk).update(valid_until=MOMENT + timedelta(days=3, microseconds=5))
    assert stock_events.emit_stock_low() + stock_events.emit_codes_expiring() == 2
    assert_pinned(only("stock.low"), "stock.low", {
        "product": {"sku": "GIFT-25", "name": "Gift card 25"}, "available": 8, "threshold": 8,
    })
    assert_pinned(only("codes.expiring"), "codes.expiring", {
        "batch": {"id": batch.pk, "reference": batch.reference, "valid_until": "2026-03-04T12:00:00.123461Z"},
        "product": {"sku": "GIFT-25", "name": "Gift card 25"}, "available": 8,
    })


def test_fraud_alert_event(shop):
    from fraud.services.events import record_fraud_event

    fraud_event = record_fraud_event(
        merchant_id=shop.storefront.merchant_id, severity="high", kind="canary_use", decision="deny",
        context={"code_id": 5, "code_last4": "WXYZ", "ip": "203.0.113.9", "reasons": ["canary"],
                 "storefront_id": shop.storefront.pk},
    )
    assert_pinned(only("fraud.alert"), "fraud.alert", {
        "fraud_event": {
            "id": fraud_event.pk, "kind": "canary_use", "severity": "high", "decision": "deny",
            "batch_id": None,
            "context": {"code_id": 5, "code_last4": "WXYZ", "storefront_id": shop.storefront.pk,
                        "reasons": ["canary"]},
        },
    })
