import uuid

import pytest

from tests.vouchers.webhooks.conftest import make_shop
from vouchers.models import IdempotencyRecord
from vouchers.webhooks.models import WebhookEndpoint
from vouchers.webhooks.services import addresses
from vouchers.webhooks.services.delivery import live_secrets

pytestmark = pytest.mark.django_db
PATH = "/api/v1/webhooks/endpoints/"


@pytest.fixture
def shop():
    return make_shop(codes=0)


def create(client, url="https://hooks.example.com/in", events=("code.redeemed",), key=None):
    return client.post(PATH, {"url": url, "events": list(events)}, idempotency_key=key or str(uuid.uuid4()))


@pytest.fixture
def public_dns(monkeypatch):
    monkeypatch.setattr(addresses, "resolve", lambda host, port: ["93.184.216.34"])


def test_create_shows_the_secret_once_and_stores_it_sealed(shop, public_dns):
    # when
    response = create(shop.client, events=["code.redeemed", "issuance.issued", "code.redeemed"])
    # then
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "url", "events", "enabled", "created_at", "secret"}
    assert (body["url"], body["events"], body["enabled"]) == (
        "https://hooks.example.com/in", ["issuance.issued", "code.redeemed"], True,
    )
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 40
    endpoint = WebhookEndpoint.objects.get(pk=body["id"])
    assert endpoint.storefront_id == shop.storefront.pk
    assert endpoint.merchant_id == shop.storefront.merchant_id
    assert live_secrets(endpoint) == [body["secret"]]
    assert body["secret"].encode() not in bytes(endpoint.secret_ciphertext)
    record = IdempotencyRecord.objects.get()
    assert "secret" not in record.response_body
    listed = shop.client.get(PATH).json()["results"]
    assert listed == [{k: v for k, v in body.items() if k != "secret"}]


def test_a_replay_returns_the_same_endpoint_and_secret_without_a_second_one(shop, public_dns):
    first = create(shop.client, key="k-1")
    replay = create(shop.client, key="k-1")
    assert replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert WebhookEndpoint.objects.count() == 1


def test_unknown_event_is_refused_and_nothing_is_stored(shop, public_dns):
    response = create(shop.client, events=["code.redeemed", "code.stolen"])
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert "events" in response.json()["errors"]
    assert WebhookEndpoint.objects.count() == 0


def test_missing_idempotency_key_is_refused(shop, public_dns):
    response = shop.client.post(PATH, {"url": "https://hooks.example.com/", "events": ["stock.low"]},
                                idempotency_key=None)
    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_required"
    assert WebhookEndpoint.objects.count() == 0


@pytest.mark.parametrize(("url", "resolved"), [
    ("http://hooks.example.com/in", ["93.184.216.34"]),   # not https
    ("https://hooks.example.com/in", ["127.0.0.1"]),      # loopback
    ("https://hooks.example.com/in", ["10.1.2.3"]),       # private
    ("https://hooks.example.com/in", ["169.254.169.254"]),  # link-local (cloud metadata)
    ("https://hooks.example.com/in", ["93.184.216.34", "192.168.0.9"]),  # any private answer
    ("https://hooks.example.com/in", ["::1"]),
    ("https://hooks.example.com/in", ["::ffff:127.0.0.1"]),
    ("https://user:pw@hooks.example.com/in", ["93.184.216.34"]),
])
def test_production_refuses_urls_that_are_not_https_or_not_public(shop, settings, monkeypatch, url, resolved):
    # given the production rules
    settings.WEBHOOK_REQUIRE_HTTPS = True
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    monkeypatch.setattr(addresses, "resolve", lambda host, port: resolved)
    # when
    response = create(shop.client, url=url)
    # then
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert list(response.json()["errors"]) == ["url"]
    assert WebhookEndpoint.objects.count() == 0


def test_production_accepts_a_public_https_url(shop, settings, public_dns):
    settings.WEBHOOK_REQUIRE_HTTPS = True
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    assert create(shop.client).status_code == 201


def test_another_storefronts_endpoint_is_not_listed_and_cannot_be_deleted(shop, public_dns):
    other = make_shop(codes=0)
    theirs = create(other.client).json()
    # when
    listed = shop.client.get(PATH).json()["results"]
    deleted = shop.client.http.delete(f"{PATH}{theirs['id']}/")
    # then
    assert listed == []
    assert deleted.status_code == 404
    assert deleted.json()["code"] == "not_found"
    assert WebhookEndpoint.objects.filter(pk=theirs["id"]).exists()


def test_delete_removes_the_endpoint(shop, public_dns):
    mine = create(shop.client).json()
    response = shop.client.http.delete(f"{PATH}{mine['id']}/")
    assert response.status_code == 204
    assert WebhookEndpoint.objects.count() == 0
    assert shop.client.http.delete(f"{PATH}{mine['id']}/").status_code == 404


def test_without_a_key_the_endpoints_are_401(shop):
    from rest_framework.test import APIClient

    assert APIClient().get(PATH).status_code == 401


def test_the_schema_enumerates_every_event_type():
    import yaml
    from django.test import Client

    from vouchers.webhooks.events import EVENT_TYPES

    schema = yaml.safe_load(Client().get("/api/schema/").content)
    assert schema["components"]["schemas"]["WebhookEventTypeEnum"]["enum"] == list(EVENT_TYPES)
    assert {"statement.issued", "dispute.resolved"} <= set(EVENT_TYPES)


def test_rotating_through_the_api_shows_the_new_secret_once_and_both_sign_meanwhile(shop, public_dns):
    import time

    from vouchers.webhooks.services import secrets

    # given an endpoint
    first = create(shop.client).json()
    # when its secret is rotated, and the rotation replayed
    rotated = shop.client.post(f"{PATH}{first['id']}/rotate-secret/", idempotency_key="rot-1")
    replay = shop.client.post(f"{PATH}{first['id']}/rotate-secret/", idempotency_key="rot-1")
    # then the new secret is shown once more by the replay only, and both secrets sign
    assert rotated.status_code == 200
    body = rotated.json()
    assert set(body) == {"id", "secret", "previous_secret_expires_at"}
    assert body["secret"] != first["secret"] and body["secret"].startswith("whsec_")
    assert (replay.status_code, replay["Idempotent-Replayed"], replay.json()) == (200, "true", body)
    endpoint = WebhookEndpoint.objects.get(pk=first["id"])
    assert live_secrets(endpoint) == [body["secret"], first["secret"]]
    header = secrets.signature_header(live_secrets(endpoint), timestamp=int(time.time()), body=b"{}")
    for secret in (body["secret"], first["secret"]):
        assert secrets.verify(header, secret=secret, body=b"{}", now=int(time.time()))
    for record in IdempotencyRecord.objects.all():
        assert "secret" not in record.response_body


def test_another_storefronts_endpoint_cannot_be_rotated(shop, public_dns):
    other = make_shop(codes=0)
    theirs = create(other.client).json()
    sealed = bytes(WebhookEndpoint.objects.get(pk=theirs["id"]).secret_ciphertext)
    response = shop.client.post(f"{PATH}{theirs['id']}/rotate-secret/")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert bytes(WebhookEndpoint.objects.get(pk=theirs["id"]).secret_ciphertext) == sealed


def test_patch_pauses_and_changes_an_endpoint_and_it_then_receives_accordingly(shop, public_dns):
    from vouchers.webhooks.models import WebhookEvent
    from vouchers.webhooks.services import outbox

    # given an endpoint for code.redeemed
    mine = create(shop.client).json()
    path = f"{PATH}{mine['id']}/"
    # when it is paused
    paused = shop.client.http.patch(path, {"enabled": False}, format="json")
    # then it is shown paused and receives nothing
    assert paused.status_code == 200
    assert (paused.json()["enabled"], paused.json()["events"]) == (False, ["code.redeemed"])
    assert shop.client.get(path).json() == paused.json()
    def emit(kind):
        return outbox.emit(kind, owners=[("storefront", shop.storefront.pk)], merchant_id=None,
                           data=lambda: {"n": 1})

    assert emit("code.redeemed") is None
    # when it is resumed for other events and moved
    changed = shop.client.http.patch(path, {"enabled": True, "events": ["stock.low"],
                                            "url": "https://hooks.example.com/v2"}, format="json")
    assert changed.status_code == 200
    assert {k: changed.json()[k] for k in ("enabled", "events", "url")} == {
        "enabled": True, "events": ["stock.low"], "url": "https://hooks.example.com/v2"}
    assert emit("code.redeemed") is None
    assert emit("stock.low") is not None
    assert WebhookEvent.objects.get().type == "stock.low"


@pytest.mark.parametrize("body", [{}, {"events": ["statement.issued"]}, {"events": []}, {"url": "ftp://x/"}])
def test_a_bad_change_is_refused_and_changes_nothing(shop, public_dns, body):
    mine = create(shop.client).json()
    response = shop.client.http.patch(f"{PATH}{mine['id']}/", body, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "invalid_request")
    endpoint = WebhookEndpoint.objects.get(pk=mine["id"])
    unchanged = ("https://hooks.example.com/in", ["code.redeemed"], True)
    assert (endpoint.url, endpoint.events, endpoint.enabled) == unchanged


def test_another_storefronts_endpoint_cannot_be_read_or_changed(shop, public_dns):
    other = make_shop(codes=0)
    theirs = create(other.client).json()
    path = f"{PATH}{theirs['id']}/"
    assert shop.client.get(path).json()["code"] == "not_found"
    changed = shop.client.http.patch(path, {"enabled": False}, format="json")
    assert (changed.status_code, changed.json()["code"]) == (404, "not_found")
    assert WebhookEndpoint.objects.get(pk=theirs["id"]).enabled is True
