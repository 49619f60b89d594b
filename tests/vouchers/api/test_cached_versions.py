"""In-process copies (API keys, fraud rules, list presence) follow their version at once."""

from __future__ import annotations

import pytest

from fraud.models import BlocklistEntry, FraudRule, ListKind
from fraud.services.rules import lists_changed, rules_changed
from tests.snapshots import world
from vouchers.api import authentication
from vouchers.services.api_keys import revoke_storefront_key

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_revoked_key_stops_working_on_the_next_request_although_it_was_cached(shop):
    # given a key used twice, so its row is held in process under the current version
    assert shop.client.get("/api/v1/products/").status_code == 200
    assert shop.client.get("/api/v1/products/").status_code == 200
    prefix = shop.client.key.partition(".")[0]
    assert authentication._BY_PREFIX[prefix].version is not None
    # when it is revoked
    api_key = shop.storefront.api_keys.get()
    revoke_storefront_key(api_key=api_key, revoked_by=None)
    before = world()
    # then the very next request is refused and changes nothing
    response = shop.client.issue(shop.product.sku)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert world() == before


def test_a_deactivated_storefront_stops_its_keys_on_the_next_request(shop):
    shop.client.get("/api/v1/products/")
    shop.client.get("/api/v1/products/")
    from vouchers.services.api_keys import storefront_keys_changed

    shop.storefront.is_active = False
    shop.storefront.save(update_fields=["is_active"])
    storefront_keys_changed(merchant_id=shop.storefront.merchant_id)
    assert shop.client.get("/api/v1/products/").status_code == 401


def test_a_new_blocklist_entry_applies_on_the_next_request(shop):
    # given a customer whose redemptions pass and whose merchant's lists were cached empty
    codes = [c["code"] for c in shop.client.issue(shop.product.sku, quantity=3).json()["codes"]]
    assert shop.client.redeem(codes[0], customer="mallory").status_code == 201
    assert shop.client.redeem(codes[1], customer="mallory").status_code == 201
    # when the merchant blocks that customer (the admin's save calls lists_changed)
    merchant_id = shop.storefront.merchant_id
    BlocklistEntry.objects.create(merchant_id=merchant_id, kind=ListKind.CUSTOMER, value="mallory")
    lists_changed(merchant_id=merchant_id)
    # then the next attempt is denied
    response = shop.client.redeem(codes[2], customer="mallory")
    assert response.status_code == 403
    assert response.json()["code"] == "fraud_denied"


def test_a_disabled_rule_stops_applying_on_the_next_request(shop):
    # given the default quantity cap (20 per order) refusing an order of 5 once lowered to 2
    shop.client.issue(shop.product.sku)
    merchant_id = shop.storefront.merchant_id
    cap = FraudRule.objects.get(merchant_id=merchant_id, kind=FraudRule.Kind.QUANTITY_CAP)
    FraudRule.objects.filter(pk=cap.pk).update(limit=2)
    rules_changed(merchant_id=merchant_id)
    assert shop.client.issue(shop.product.sku, quantity=3).json()["code"] == "fraud_denied"
    # when the rule is disabled
    FraudRule.objects.filter(pk=cap.pk).update(enabled=False)
    rules_changed(merchant_id=merchant_id)
    # then the same order goes through on the next request
    assert shop.client.issue(shop.product.sku, quantity=3).status_code == 201
