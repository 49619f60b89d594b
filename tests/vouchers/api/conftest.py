"""Fixtures for the storefront API: a merchant with stock and a client holding a key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from tests.factories import MerchantFactory, ProductFactory, StorefrontFactory
from vouchers.crypto import decrypt_code
from vouchers.models import Code, Product, Storefront, StorefrontAPIKey
from vouchers.services.generation import generate_batch


class StorefrontClient:
    """An API client speaking for one storefront; every POST gets a fresh Idempotency-Key."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.http = APIClient()
        self.http.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")

    def post(self, path: str, body: dict | None = None, *, idempotency_key: str | None = "auto"):
        headers = {}
        if idempotency_key == "auto":
            idempotency_key = str(uuid.uuid4())
        if idempotency_key is not None:
            headers["HTTP_IDEMPOTENCY_KEY"] = idempotency_key
        return self.http.post(path, body or {}, format="json", **headers)

    def get(self, path: str):
        return self.http.get(path)

    def issue(self, sku: str, quantity: int = 1, **fields):
        return self.post("/api/v1/issuances/", {"sku": sku, "quantity": quantity, **fields})

    def redeem(self, code: str, **fields):
        return self.post("/api/v1/redemptions/", {"code": code, **fields})

    def check(self, code: str, **fields):
        return self.http.post("/api/v1/codes/check/", {"code": code, **fields}, format="json")

    def confirm(self, issuance_id: str):
        return self.post(f"/api/v1/issuances/{issuance_id}/confirm/")

    def cancel(self, issuance_id: str):
        return self.post(f"/api/v1/issuances/{issuance_id}/cancel/")

    def reverse(self, redemption_id: str, reason: str = "customer refund"):
        return self.post(f"/api/v1/redemptions/{redemption_id}/reversal/", {"reason": reason})


@dataclass
class Shop:
    storefront: Storefront
    product: Product
    client: StorefrontClient

    def plaintexts(self) -> list[str]:
        return [decrypt_code(c) for c in Code.objects.filter(batch__product=self.product).order_by("pk")]


def make_shop(*, codes: int = 10, merchant=None, **product_fields) -> Shop:
    merchant = merchant or MerchantFactory()
    storefront = StorefrontFactory(merchant=merchant)
    _, key = StorefrontAPIKey.objects.create_key(name="test", storefront=storefront)
    product = ProductFactory(merchant=merchant, **product_fields)
    if codes:
        generate_batch(product=product, count=codes)
    return Shop(storefront=storefront, product=product, client=StorefrontClient(key))


@pytest.fixture
def shop(db) -> Shop:
    return make_shop(codes=10)


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings):
    """Each test starts with empty rate-limit counters (locmem or a Redis db of its own)."""
    from django.core.cache import cache

    cache.clear()
