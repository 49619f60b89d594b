import pytest
from rest_framework.test import APIClient

from tests.snapshots import world

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("header", [None, "Api-Key nope.nope", "Bearer abc", "Api-Key "])
def test_missing_or_wrong_key_is_401_problem(shop, header):
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    before = world()
    response = client.post("/api/v1/issuances/", {"sku": shop.product.sku}, format="json",
                           HTTP_IDEMPOTENCY_KEY="x")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "not_authenticated"
    assert set(body) >= {"type", "title", "status", "code", "detail"}
    assert body["status"] == 401
    assert world() == before


def test_revoked_key_is_401(shop):
    from vouchers.models import StorefrontAPIKey

    StorefrontAPIKey.objects.update(revoked=True)
    assert shop.client.get("/api/v1/products/").status_code == 401


def test_malformed_json_is_invalid_request(shop):
    response = shop.client.http.post("/api/v1/issuances/", data="{nope", content_type="application/json",
                                     HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


def test_unknown_api_path_is_problem_404(shop):
    response = shop.client.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


def test_rate_limit_per_key_is_429_with_retry_after(shop, settings):
    settings.API_RATE_PER_KEY = "3/m"
    statuses = [shop.client.get("/api/v1/products/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = shop.client.get("/api/v1/products/")
    assert response.json()["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response["Content-Type"] == "application/problem+json"


def test_rate_limit_per_address_also_limits_unauthenticated_guessing(shop, settings):
    settings.API_RATE_PER_ADDRESS = "2/m"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Api-Key wrong.key")
    statuses = [client.get("/api/v1/products/").status_code for _ in range(3)]
    assert statuses == [401, 401, 429]


def test_rate_limited_post_changes_nothing_and_does_not_burn_the_key(shop, settings):
    settings.API_RATE_PER_KEY = "1/m"
    shop.client.get("/api/v1/products/")
    before = world()
    limited = shop.client.post("/api/v1/issuances/", {"sku": shop.product.sku}, idempotency_key="rl")
    assert limited.status_code == 429
    assert world() == before
    settings.API_RATE_PER_KEY = "100/m"
    from django.core.cache import cache

    cache.clear()
    assert shop.client.post("/api/v1/issuances/", {"sku": shop.product.sku},
                            idempotency_key="rl").status_code == 201


def test_unreachable_rate_limit_store_fails_closed(shop, settings):
    # given the shared cache pointed at a port where nothing listens
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:6390/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }
    before = world()
    # when a storefront calls
    response = shop.client.issue(shop.product.sku)
    # then it is refused, not let through unlimited
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"
    assert int(response["Retry-After"]) >= 1
    assert world() == before
