"""A full scenario (issue, redeem, reverse, webhook delivery, a failed attempt) leaks no code.

Looked for: in every log line as configured (scrubbing filter, JSON), in every Celery
message sent, in every webhook body delivered and stored, and in every key and value
of the cache (Redis when REDIS_URL is set, else the local-memory cache).
"""

import json
import pickle

import pytest
from celery.app.task import Task
from django.core.cache import cache

from tests.vouchers.webhooks.conftest import make_shop
from vouchers.webhooks.models import WebhookEvent
from vouchers.webhooks.services import endpoints

pytestmark = pytest.mark.django_db



@pytest.fixture
def celery_messages(monkeypatch):
    sent: list[str] = []
    original = Task.apply_async

    def recording(self, args=None, kwargs=None, *rest, **options):
        sent.append(json.dumps({"task": self.name, "args": args, "kwargs": kwargs}, default=str))
        return original(self, args, kwargs, *rest, **options)

    monkeypatch.setattr(Task, "apply_async", recording)
    return sent


def cache_dump() -> bytes:
    """Every key and value of the cache, as bytes."""
    if hasattr(cache, "client") and hasattr(cache.client, "get_client"):  # django-redis
        redis = cache.client.get_client(write=False)
        parts = []
        for key in redis.scan_iter(count=1000):
            kind = redis.type(key)
            value = {
                b"string": lambda k: redis.get(k), b"list": lambda k: b"".join(redis.lrange(k, 0, -1)),
                b"hash": lambda k: b"".join(a + b for a, b in redis.hgetall(k).items()),
                b"set": lambda k: b"".join(redis.smembers(k)),
                b"zset": lambda k: b"".join(redis.zrange(k, 0, -1)),
            }.get(kind, lambda k: b"")(key)
            parts += [key, value or b""]
        return b"\n".join(parts)
    return pickle.dumps(dict(cache._cache)) + repr(list(cache._cache)).encode()


def test_a_full_scenario_leaves_no_code_in_logs_celery_webhooks_or_the_cache(
    receiver, eager_celery, log_stream, celery_messages, django_capture_on_commit_callbacks,
):
    # given a storefront subscribed to every event of the scenario
    shop = make_shop(codes=6)
    endpoints.create_endpoint(url=receiver.url, storefront=shop.storefront,
                              events=["issuance.issued", "code.redeemed", "redemption.reversed"])
    receiver.statuses = [500]  # the first delivery fails once (an error path is logged too)
    # when codes are issued, redeemed, checked, reversed, redeemed again and a wrong code tried
    with django_capture_on_commit_callbacks(execute=True):
        issued = shop.client.issue(shop.product.sku, quantity=2, customer="c-1", order_ref="o-1").json()
    codes = [c["code"] for c in issued["codes"]]
    with django_capture_on_commit_callbacks(execute=True):
        redemption = shop.client.redeem(codes[0]).json()
    shop.client.check(codes[1])
    with django_capture_on_commit_callbacks(execute=True):
        shop.client.reverse(redemption["id"])
    with django_capture_on_commit_callbacks(execute=True):
        assert shop.client.redeem(codes[0]).status_code == 201
    assert shop.client.redeem(codes[0]).status_code == 409
    unissued = shop.plaintexts()[-1]
    assert shop.client.redeem(unissued).status_code == 404
    # then webhooks were delivered, and the scenario did log and send messages
    assert len(receiver.requests) >= 4
    assert log_stream.getvalue().count('"logger": "vouchers.request"') == 7
    assert any('"vouchers.webhooks.tasks.deliver_webhook"' in m for m in celery_messages)
    # and no code is anywhere, in any of its printed forms
    everything = {
        "logs": log_stream.getvalue().encode(),
        "celery": "\n".join(celery_messages).encode(),
        "webhook bodies": b"\n".join(r.body + json.dumps(r.headers).encode() for r in receiver.requests),
        "stored events": json.dumps(list(WebhookEvent.objects.values_list("payload", flat=True))).encode(),
        "cache": cache_dump(),
    }
    for code in [*codes, unissued]:
        for form in {code, code.replace("-", ""), code.lower()}:
            leaked = [where for where, text in everything.items() if form.encode() in text]
            assert leaked == [], f"a code leaked into {leaked}"
