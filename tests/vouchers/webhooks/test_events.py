"""Which changes send which events, and that an event lives and dies with its transaction."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from config.callers import Caller
from tests.factories import StaffFactory
from tests.vouchers.webhooks.conftest import make_shop
from vouchers.models import Batch, Issuance
from vouchers.services.redemption import redeem_code
from vouchers.services.reservations import expire_reservation
from vouchers.services.reviews import approve_review, deny_review
from vouchers.webhooks.models import WebhookEvent
from vouchers.webhooks.services import endpoints, outbox, stock_events

pytestmark = pytest.mark.django_db
ALL = ["issuance.issued", "issuance.review_approved", "issuance.review_denied", "issuance.expired",
       "code.redeemed", "redemption.reversed", "stock.low", "codes.expiring", "fraud.alert"]


@pytest.fixture
def shop():
    shop = make_shop(codes=12)
    endpoints.create_endpoint(url="http://127.0.0.1:9/", events=ALL, storefront=shop.storefront)
    outbox.forget_subscriptions()
    return shop


def types() -> list[str]:
    return list(WebhookEvent.objects.order_by("created_at", "id").values_list("type", flat=True))


def hold_for_review(shop) -> Issuance:
    response = shop.client.issue(shop.product.sku, quantity=2, reserve=True)
    issuance = Issuance.objects.get(pk=response.json()["id"])
    Issuance.objects.filter(pk=issuance.pk).update(status="review")
    issuance.refresh_from_db()
    return issuance


def test_reserving_and_cancelling_send_nothing_confirming_sends_issued(shop):
    reserved = shop.client.issue(shop.product.sku, reserve=True).json()
    cancelled = shop.client.issue(shop.product.sku, reserve=True).json()
    shop.client.cancel(cancelled["id"])
    assert types() == []
    shop.client.confirm(reserved["id"])
    assert types() == ["issuance.issued"]
    payload = WebhookEvent.objects.get().payload
    assert payload["data"]["issuance"]["id"] == reserved["id"]
    assert len(payload["data"]["codes"]) == 1


def test_review_decisions_and_expiry_send_their_events(shop):
    reviewer = StaffFactory(merchant=shop.storefront.merchant).user
    approved, denied, expired = hold_for_review(shop), hold_for_review(shop), hold_for_review(shop)
    approve_review(issuance_id=approved.pk, reviewer=reviewer, merchant_id=shop.storefront.merchant_id)
    deny_review(issuance_id=denied.pk, reviewer=reviewer, merchant_id=shop.storefront.merchant_id)
    Issuance.objects.filter(pk=expired.pk).update(reserved_until=timezone.now() - timedelta(seconds=1))
    assert expire_reservation(issuance_id=expired.pk) is True
    events = {e.payload["data"]["issuance"]["id"]: e.type for e in WebhookEvent.objects.all()}
    assert events == {str(approved.pk): "issuance.review_approved", str(denied.pk): "issuance.review_denied",
                      str(expired.pk): "issuance.expired"}
    approved_codes = WebhookEvent.objects.get(type="issuance.review_approved").payload["data"]["codes"]
    assert sorted(c["id"] for c in approved_codes) == sorted(approved.codes.values_list("pk", flat=True))


def test_an_event_rolls_back_with_its_cause(shop):
    issued = shop.client.issue(shop.product.sku).json()
    before = types()
    caller = Caller(kind="storefront", api_key_id="k", merchant_id=shop.storefront.merchant_id,
                    storefront_id=shop.storefront.pk)
    with pytest.raises(RuntimeError), transaction.atomic():
        redeem_code(caller=caller, code=issued["codes"][0]["code"])
        assert types() == [*before, "code.redeemed"]
        raise RuntimeError("the redemption's transaction fails after the event was written")
    assert types() == before


def test_low_stock_and_expiring_batches_are_announced_once(shop, settings):
    # given 12 codes in stock, a threshold of 12, a batch expiring in 3 days
    settings.WEBHOOK_STOCK_LOW_THRESHOLD = 12
    batch = shop.product.batches.get()
    Batch.objects.filter(pk=batch.pk).update(valid_until=timezone.now() + timedelta(days=3))
    # when the scan runs twice
    first = stock_events.emit_stock_low() + stock_events.emit_codes_expiring()
    second = stock_events.emit_stock_low() + stock_events.emit_codes_expiring()
    # then each is announced once
    assert (first, second) == (2, 0)
    low = WebhookEvent.objects.get(type="stock.low").payload["data"]
    assert low == {"product": {"sku": shop.product.sku, "name": shop.product.name}, "available": 12,
                   "threshold": 12}
    expiring = WebhookEvent.objects.get(type="codes.expiring").payload["data"]
    assert (expiring["batch"]["id"], expiring["available"]) == (batch.pk, 12)


def test_stock_above_the_threshold_is_not_announced(shop, settings):
    settings.WEBHOOK_STOCK_LOW_THRESHOLD = 11
    assert stock_events.emit_stock_low() == 0
    assert types() == []


def test_a_severe_fraud_event_sends_fraud_alert_to_the_merchants_storefronts(shop):
    from fraud.services.events import record_fraud_event

    record_fraud_event(merchant_id=shop.storefront.merchant_id, severity="critical", kind="canary_use",
                       context={"code_id": 5, "code_last4": "WXYZ", "ip": "203.0.113.9"}, batch_id=None)
    record_fraud_event(merchant_id=shop.storefront.merchant_id, severity="info", kind="canary_use",
                       context={})
    event = WebhookEvent.objects.get()
    assert event.type == "fraud.alert"
    assert event.payload["data"]["fraud_event"]["context"] == {"code_id": 5, "code_last4": "WXYZ"}
    assert event.payload["data"]["fraud_event"]["severity"] == "critical"
