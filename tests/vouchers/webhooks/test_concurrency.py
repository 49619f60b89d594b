"""Concurrent workers on PostgreSQL: one delivery is sent once at a time; events commit with their cause."""

import pytest

from tests.concurrency import run_concurrently
from tests.vouchers.webhooks.conftest import make_shop
from vouchers.webhooks.models import WebhookDelivery, WebhookEvent
from vouchers.webhooks.services import delivery, endpoints, outbox

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_workers_racing_for_one_delivery_send_it_once(receiver):
    # given one pending delivery
    shop = make_shop(codes=0)
    endpoints.create_endpoint(url=receiver.url, events=["stock.low"], storefront=shop.storefront)
    outbox.forget_subscriptions()
    event = outbox.emit("stock.low", owners=[("storefront", shop.storefront.pk)], merchant_id=None,
                        data=lambda: {"sku": "X"})
    pending = WebhookDelivery.objects.get(event=event)
    # when eight workers pick it up at once
    results = run_concurrently(lambda _i: delivery.deliver(pending.pk).result, tasks=8, workers=8)
    # then one sent it; the others found it claimed or done
    assert sorted(results).count("succeeded") == 1
    assert set(results) <= {"succeeded", "waiting", "skipped"}
    assert len(receiver.requests) == 1
    pending.refresh_from_db()
    assert (pending.status, pending.attempts) == ("succeeded", 1)


def test_concurrent_redemptions_write_one_event_each(receiver):
    # given ten issued codes and a subscribed storefront
    shop = make_shop(codes=10)
    endpoints.create_endpoint(url=receiver.url, events=["code.redeemed"], storefront=shop.storefront)
    outbox.forget_subscriptions()
    codes = [c["code"] for i in range(5)
             for c in shop.client.issue(shop.product.sku, quantity=2, customer=f"c{i}").json()["codes"]]
    assert len(codes) == 10
    # when each code is redeemed twice, concurrently
    statuses = run_concurrently(lambda i: shop.client.redeem(codes[i % 10]).status_code, tasks=20, workers=8)
    # then ten redemptions succeeded and exactly ten events (one per redemption) were written
    assert sorted(statuses) == [201] * 10 + [409] * 10
    assert WebhookEvent.objects.filter(type="code.redeemed").count() == 10
    assert WebhookDelivery.objects.count() == 10
