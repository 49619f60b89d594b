"""Hostile request shapes: every /api/ answer is problem+json, never a 500, whatever the profile."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.snapshots import world
from vouchers.models import IdempotencyRecord

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
WRITE_PATHS = ["/api/v1/issuances/", "/api/v1/redemptions/", "/api/v1/codes/check/"]


def nested(depth: int) -> str:
    return '{"code": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize("path", WRITE_PATHS)
@pytest.mark.parametrize("depth", [40, 1_000, 4_000])
def test_deeply_nested_json_is_invalid_request_and_changes_nothing(shop, path, depth):
    before = world()
    records_before = IdempotencyRecord.objects.count()
    response = shop.client.http.post(path, data=nested(depth), content_type="application/json",
                                     HTTP_IDEMPOTENCY_KEY=f"deep-{depth}")
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert (body["code"], body["status"], body["errors"]) == ("invalid_request", 400, {})
    assert body["detail"] == "JSON nested more than 32 levels deep."
    assert world() == before
    assert IdempotencyRecord.objects.count() == records_before


def test_nesting_within_the_limit_reaches_validation(shop):
    response = shop.client.http.post("/api/v1/codes/check/", data=nested(30), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert list(response.json()["errors"]) == ["code"]  # the serializer saw it: a list is not a string


@pytest.mark.parametrize("path", WRITE_PATHS)
def test_a_body_over_the_limit_is_413_before_parsing(shop, settings, path):
    settings.API_MAX_BODY_BYTES = 4096
    before = world()
    records_before = IdempotencyRecord.objects.count()
    body = '{"code": "' + "A" * 5000 + '"}'
    response = shop.client.http.post(path, data=body, content_type="application/json",
                                     HTTP_IDEMPOTENCY_KEY="big")
    assert response.status_code == 413
    assert response["Content-Type"] == PROBLEM
    assert response.json() == {
        "type": "https://errors.vouchers.example/payload_too_large", "title": "Payload too large",
        "status": 413, "code": "payload_too_large",
        "detail": "The request body is 5012 bytes; at most 4096 are accepted.", "max_bytes": 4096,
    }
    assert world() == before
    assert IdempotencyRecord.objects.count() == records_before


def test_a_huge_declared_length_is_refused_without_reading_the_body(shop):
    # given a request that claims 40 MB but whose stream would fail if read
    class Unreadable:
        def read(self, *args):
            raise AssertionError("the body was read")

        readline = read

    response = Client().generic(
        "POST", "/api/v1/codes/check/", data=b"", content_type="application/json",
        CONTENT_LENGTH=str(40 * 1024 * 1024), HTTP_AUTHORIZATION=f"Api-Key {shop.client.key}",
        **{"wsgi.input": Unreadable()},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_a_body_at_the_limit_is_parsed(shop, settings):
    settings.API_MAX_BODY_BYTES = 64
    body = '{"code": "' + "A" * (64 - 12) + '"}'
    assert len(body) == 64
    response = shop.client.http.post("/api/v1/codes/check/", data=body, content_type="application/json")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_code"


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_an_unknown_api_url_is_problem_404_in_every_profile(shop, settings, debug, method):
    settings.DEBUG = debug
    response = getattr(shop.client.http, method)("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM
    assert response.json() == {"type": "https://errors.vouchers.example/not_found", "title": "Not found",
                               "status": 404, "code": "not_found", "detail": "Not found."}


@pytest.mark.parametrize("debug", [True, False])
def test_a_post_without_its_trailing_slash_is_problem_404_not_a_debug_page(shop, settings, debug):
    settings.DEBUG = debug
    response = shop.client.http.post("/api/v1/issuances", {"sku": shop.product.sku}, format="json")
    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("debug", [True, False])
def test_an_unexpected_error_under_api_is_problem_500_in_every_profile(shop, settings, monkeypatch, debug):
    settings.DEBUG = debug
    from vouchers.api import views

    def boom(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(views.ProductListApi, "get", boom)
    client = shop.client.http
    client.raise_request_exception = False
    response = client.get("/api/v1/products/")
    assert response.status_code == 500
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "internal_error"
    assert "a bug" not in response.content.decode()


def test_a_bad_host_under_api_is_problem_400(shop, settings):
    settings.DEBUG = True
    response = shop.client.http.get("/api/v1/products/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "bad_request"


def test_the_admin_keeps_its_html_pages(settings, db):
    settings.DEBUG = False
    response = Client().get("/admin/no-such-page/")
    assert response.status_code in (302, 404)
    assert response["Content-Type"].startswith("text/html")
