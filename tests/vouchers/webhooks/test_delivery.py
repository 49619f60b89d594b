import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.vouchers.webhooks.conftest import make_shop
from vouchers.models import Code
from vouchers.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from vouchers.webhooks.services import addresses, delivery, endpoints, outbox, secrets

pytestmark = pytest.mark.django_db


def subscribe(shop, url, events):
    return endpoints.create_endpoint(url=url, events=events, storefront=shop.storefront)


def test_issue_redeem_reverse_are_delivered_signed_in_order_without_codes(
    receiver, eager_celery, django_capture_on_commit_callbacks,
):
    # given a storefront subscribed to its issuances and redemptions
    shop = make_shop(codes=5)
    created = subscribe(shop, receiver.url, ["issuance.issued", "code.redeemed", "redemption.reversed"])
    # when it issues, redeems and reverses through the API
    with django_capture_on_commit_callbacks(execute=True):
        issued = shop.client.issue(shop.product.sku, quantity=2, order_ref="order-7").json()
    plaintexts = [c["code"] for c in issued["codes"]]
    with django_capture_on_commit_callbacks(execute=True):
        redeemed = shop.client.redeem(plaintexts[0]).json()
    with django_capture_on_commit_callbacks(execute=True):
        shop.client.reverse(redeemed["id"])
    # then the receiver got three signed deliveries, in order
    assert [json.loads(r.body)["type"] for r in receiver.requests] == [
        "issuance.issued", "code.redeemed", "redemption.reversed",
    ]
    now = int(time.time())
    for request in receiver.requests:
        assert request.path == "/hooks"
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["Webhook-Id"] == json.loads(request.body)["id"]
        assert secrets.verify(request.headers["Webhook-Signature"], secret=created.secret, body=request.body,
                              now=now)
        assert not secrets.verify(request.headers["Webhook-Signature"], secret="whsec_wrong",
                                  body=request.body, now=now)
        for plaintext in plaintexts:
            assert plaintext.encode() not in request.body
    first = json.loads(receiver.requests[0].body)
    codes = Code.objects.filter(issuance_id=issued["id"]).order_by("pk")
    assert first["data"] == {
        "issuance": {"id": issued["id"], "status": "issued", "sku": shop.product.sku, "quantity": 2,
                     "customer": "", "order_ref": "order-7"},
        "codes": [{"id": c.pk, "last4": c.last4} for c in codes],
    }
    second = json.loads(receiver.requests[1].body)["data"]
    assert second["redemption"]["id"] == redeemed["id"]
    assert second["code"] == {"id": codes[0].pk, "last4": codes[0].last4, "issuance_id": issued["id"]}
    assert json.loads(receiver.requests[2].body)["data"]["redemption"]["reversed_at"] is not None
    assert list(WebhookDelivery.objects.values_list("status", "attempts", "last_status_code")) == [
        ("succeeded", 1, 200)] * 3
    assert all(WebhookEvent.objects.values_list("id", flat=True))


def test_an_owner_without_a_subscription_costs_no_query_once_cached(django_assert_num_queries):
    shop = make_shop(codes=0)
    outbox.subscribed_types(("storefront", shop.storefront.pk))  # warms the cache
    with django_assert_num_queries(0):
        result = outbox.emit("code.redeemed", owners=[("storefront", shop.storefront.pk)], merchant_id=None,
                             data=lambda: pytest.fail("payload built for nobody"))
    assert result is None
    assert WebhookEvent.objects.count() == 0


def test_an_unknown_event_type_or_a_code_in_a_payload_is_refused():
    shop = make_shop(codes=0)
    endpoints.create_endpoint(url="http://127.0.0.1:9/", events=["stock.low"], storefront=shop.storefront)
    with pytest.raises(ValueError, match="unknown webhook event type"):
        outbox.emit("stock.lowish", owners=[("storefront", shop.storefront.pk)], merchant_id=None,
                    data=dict)
    with pytest.raises(ValueError, match="may not hold text"):
        outbox.emit("stock.low", owners=[("storefront", shop.storefront.pk)], merchant_id=None,
                    data=lambda: {"nested": [{"code": "ABCD-EFGH"}]})
    assert WebhookEvent.objects.count() == 0


def emit_one(shop, *, key="k"):
    return outbox.emit("stock.low", owners=[("storefront", shop.storefront.pk)], merchant_id=None,
                       data=lambda: {"sku": shop.product.sku}, ordering_key=key)


def test_a_failed_attempt_is_retried_with_backoff_and_jitter_then_marked_failed(receiver, settings):
    # given an endpoint that answers 500
    settings.WEBHOOK_RETRY_BASE_SECONDS = 30
    shop = make_shop(codes=0)
    subscribe(shop, receiver.url, ["stock.low"])
    receiver.statuses = [500, 503]
    event = emit_one(shop)
    pending = WebhookDelivery.objects.get(event=event)
    counted_before = counted()
    # when it is sent
    before = timezone.now()
    outcome = delivery.deliver(pending.pk)
    # then it waits 15-30 s (30 s, jittered) before the next attempt
    pending.refresh_from_db()
    assert outcome.result == "retry"
    assert (pending.status, pending.attempts, pending.last_status_code, pending.last_error) == (
        "pending", 1, 500, "HTTP 500")
    assert before + timedelta(seconds=15) <= pending.next_attempt_at <= timezone.now() + timedelta(seconds=30)
    # and a second failure waits twice as long (30-60 s)
    WebhookDelivery.objects.filter(pk=pending.pk).update(next_attempt_at=timezone.now())
    before = timezone.now()
    assert delivery.deliver(pending.pk).result == "retry"
    pending.refresh_from_db()
    assert before + timedelta(seconds=30) <= pending.next_attempt_at <= timezone.now() + timedelta(seconds=60)
    # when the retry period is over, the next failure is final
    receiver.statuses = [500]
    WebhookDelivery.objects.filter(pk=pending.pk).update(
        next_attempt_at=timezone.now(), retry_until=timezone.now() - timedelta(seconds=1))
    assert delivery.deliver(pending.pk).result == "failed"
    pending.refresh_from_db()
    assert (pending.status, pending.attempts) == ("failed", 3)
    assert len(receiver.requests) == 3
    # and redelivering it (the admin's action) sends it again, now answered 200
    assert delivery.redeliver([pending.pk]) == 1
    assert delivery.deliver(pending.pk).result == "succeeded"
    pending.refresh_from_db()
    assert (pending.status, pending.attempts, pending.last_status_code) == ("succeeded", 4, 200)
    assert len({r.headers["Webhook-Id"] for r in receiver.requests}) == 1
    # and the business counters saw two retries, one failure, one delivery
    moved = {name: counted()[name] - counted_before[name] for name in counted_before}
    assert moved == {"delivered": 1, "retry": 2, "failed": 1, "failures": 1}


def counted() -> dict[str, float]:
    from prometheus_client import REGISTRY

    def value(name, labels=None):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    outcomes = ("delivered", "retry", "failed")
    return {
        **{o: value("vouchers_webhook_deliveries_total", {"outcome": o}) for o in outcomes},
        "failures": value("vouchers_webhook_failures_total"),
    }


def test_a_delivery_not_yet_due_or_already_sent_is_not_sent_again(receiver):
    shop = make_shop(codes=0)
    subscribe(shop, receiver.url, ["stock.low"])
    pending = WebhookDelivery.objects.get(event=emit_one(shop))
    assert delivery.deliver(pending.pk).result == "succeeded"
    assert delivery.deliver(pending.pk).result == "skipped"
    assert len(receiver.requests) == 1


def test_a_later_event_with_the_same_ordering_key_waits_for_the_earlier_one(receiver):
    shop = make_shop(codes=0)
    subscribe(shop, receiver.url, ["stock.low"])
    receiver.statuses = [500]
    first = WebhookDelivery.objects.get(event=emit_one(shop, key="code:1"))
    second = WebhookDelivery.objects.get(event=emit_one(shop, key="code:1"))
    other = WebhookDelivery.objects.get(event=emit_one(shop, key="code:2"))
    # when the first fails
    assert delivery.deliver(first.pk).result == "retry"
    # then the second waits for it, and another key does not
    assert delivery.due_delivery_ids() == [other.pk]
    assert delivery.deliver(second.pk).result == "waiting"
    assert delivery.deliver(other.pk).result == "succeeded"
    assert len(receiver.requests) == 2
    second.refresh_from_db()
    assert (second.status, second.attempts) == ("pending", 0)


def test_during_a_rotation_both_secrets_sign(receiver):
    shop = make_shop(codes=0)
    created = subscribe(shop, receiver.url, ["stock.low"])
    new_secret = endpoints.rotate_secret(endpoint=created.endpoint)
    delivery.deliver(WebhookDelivery.objects.get(event=emit_one(shop)).pk)
    header = receiver.requests[0].headers["Webhook-Signature"]
    assert header.count("v1=") == 2
    body, now = receiver.requests[0].body, int(time.time())
    assert secrets.verify(header, secret=created.secret, body=body, now=now)
    assert secrets.verify(header, secret=new_secret, body=body, now=now)


def test_a_host_that_now_resolves_to_a_private_address_is_not_called(receiver, settings, monkeypatch):
    # given an endpoint created while its name resolved to a public address
    shop = make_shop(codes=0)
    monkeypatch.setattr(addresses, "resolve", lambda host, port: ["93.184.216.34"])
    subscribe(shop, receiver.url.replace("127.0.0.1", "hooks.example.com"), ["stock.low"])
    pending = WebhookDelivery.objects.get(event=emit_one(shop))
    # when the name now resolves to loopback (DNS rebinding) under the production rules
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    monkeypatch.setattr(addresses, "resolve", lambda host, port: ["127.0.0.1"])
    outcome = delivery.deliver(pending.pk)
    # then nothing is sent and the attempt is recorded as refused
    pending.refresh_from_db()
    assert outcome.result == "retry"
    assert receiver.requests == []
    assert pending.last_error.startswith("refused: ")
    assert pending.last_status_code is None


def test_a_timeout_or_refused_connection_is_a_failed_attempt(settings):
    shop = make_shop(codes=0)
    subscribe(shop, "http://127.0.0.1:9/closed", ["stock.low"])
    pending = WebhookDelivery.objects.get(event=emit_one(shop))
    assert delivery.deliver(pending.pk).result == "retry"
    pending.refresh_from_db()
    assert pending.last_error.startswith("ConnectionRefusedError")


def test_disabled_endpoints_and_other_storefronts_get_nothing(receiver):
    shop, other = make_shop(codes=0), make_shop(codes=0)
    subscribe(other, receiver.url, ["stock.low"])
    created = subscribe(shop, receiver.url, ["stock.low"])
    WebhookEndpoint.objects.filter(pk=created.endpoint.pk).update(enabled=False)
    outbox.forget_subscriptions()
    assert emit_one(shop) is None
    assert WebhookDelivery.objects.count() == 0


def test_merchant_wide_events_reach_every_subscribed_storefront_of_the_merchant(receiver):
    shop = make_shop(codes=0)
    sibling = make_shop(codes=0, merchant=shop.storefront.merchant)
    make_shop(codes=0)  # another merchant
    subscribe(shop, receiver.url, ["fraud.alert"])
    subscribe(sibling, receiver.url, ["fraud.alert"])
    event = outbox.emit("fraud.alert", owners=[("merchant", shop.storefront.merchant_id)],
                        merchant_id=shop.storefront.merchant_id, data=lambda: {"fraud_event": {"id": 1}})
    assert sorted(event.deliveries.values_list("endpoint__storefront_id", flat=True)) == sorted(
        [shop.storefront.pk, sibling.storefront.pk])


def test_the_verification_snippet_of_the_docs_accepts_a_real_delivery_and_nothing_else(receiver):
    # given the snippet published in docs/webhooks.md
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "docs" / "webhooks.md").read_text()
    snippet = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(snippet, "docs/webhooks.md", "exec"), namespace)  # noqa: S102 (our own docs)
    verify_webhook = namespace["verify_webhook"]
    # and a real delivery
    shop = make_shop(codes=0)
    created = subscribe(shop, receiver.url, ["stock.low"])
    delivery.deliver(WebhookDelivery.objects.get(event=emit_one(shop)).pk)
    request = receiver.requests[0]
    header = request.headers["Webhook-Signature"]
    # then it verifies, and a changed body, another secret or an old timestamp do not
    assert verify_webhook(request.body, header, created.secret) is True
    assert verify_webhook(request.body + b" ", header, created.secret) is False
    assert verify_webhook(request.body, header, "whsec_other") is False
    old = f"t={int(time.time()) - 3600}," + header.split(",", 1)[1]
    assert verify_webhook(request.body, old, created.secret) is False


def test_a_secret_sealed_under_a_key_that_left_the_ring_fails_the_attempt_loudly(receiver):
    shop = make_shop(codes=0)
    created = subscribe(shop, receiver.url, ["stock.low"])
    WebhookEndpoint.objects.filter(pk=created.endpoint.pk).update(secret_key_id="retired")
    pending = WebhookDelivery.objects.get(event=emit_one(shop))
    assert delivery.deliver(pending.pk).result == "retry"
    pending.refresh_from_db()
    assert pending.last_error.startswith("signing secret cannot be opened")
    assert receiver.requests == []
