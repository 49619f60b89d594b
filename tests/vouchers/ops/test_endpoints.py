"""/healthz, /readyz and /metrics."""

from __future__ import annotations

import socket

import pytest
from django.test import Client, override_settings
from prometheus_client import REGISTRY

from tests.vouchers.api.conftest import make_shop

pytestmark = pytest.mark.django_db


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_cache_at(port: int) -> dict:
    return {"default": {
        "BACKEND": "django_redis.cache.RedisCache", "LOCATION": f"redis://127.0.0.1:{port}/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
    }}


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels or None) or 0.0


def test_healthz_answers_while_the_process_runs():
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_200_when_every_dependency_answers():
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "cache": "ok", "broker": "ok"}}


def test_readyz_is_503_naming_the_cache_when_redis_does_not_answer():
    with override_settings(CACHES=redis_cache_at(closed_port())):
        response = Client().get("/readyz")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert response["Retry-After"] == "5"
    assert response.json() == {
        "type": "https://errors.vouchers.example/not_ready", "title": "Not ready", "status": 503,
        "code": "not_ready", "detail": "Unavailable: cache.", "failed": ["cache"],
        "checks": {"database": "ok", "cache": "unavailable", "broker": "ok"},
    }


def test_readyz_is_503_naming_the_broker_when_it_does_not_answer():
    from config.celery import app

    saved = app.conf.task_always_eager, app.conf.broker_url
    app.conf.task_always_eager, app.conf.broker_url = False, f"redis://127.0.0.1:{closed_port()}/0"
    try:
        response = Client().get("/readyz")
    finally:
        app.conf.task_always_eager, app.conf.broker_url = saved
    assert response.status_code == 503
    assert response.json()["failed"] == ["broker"]
    assert response.json()["checks"]["database"] == "ok"


def test_readyz_is_503_naming_the_database_when_it_fails(monkeypatch):
    from django.db import OperationalError

    from vouchers.ops import views

    def down():
        raise OperationalError("connection refused")

    monkeypatch.setitem(views.CHECKS, "database", down)
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["database"]


def test_metrics_count_issued_redeemed_out_of_stock_and_fraud_decisions():
    shop = make_shop(codes=3)
    before = {name: sample(name) for name in (
        "vouchers_codes_issued_total", "vouchers_codes_redeemed_total", "vouchers_out_of_stock_total")}
    allowed_before = sample("vouchers_fraud_decisions_total", outcome="allow")
    # when two codes are issued, one redeemed, a replay of the redemption is sent, and
    # an issuance of two more finds one
    issued = shop.client.issue(shop.product.sku, quantity=2, customer="a")
    code = issued.json()["codes"][0]["code"]
    shop.client.post("/api/v1/redemptions/", {"code": code}, idempotency_key="r1")
    replay = shop.client.post("/api/v1/redemptions/", {"code": code}, idempotency_key="r1")
    assert replay["Idempotent-Replayed"] == "true"
    assert shop.client.issue(shop.product.sku, quantity=2, customer="b").status_code == 409
    # then the counters moved by exactly that
    assert sample("vouchers_codes_issued_total") - before["vouchers_codes_issued_total"] == 2
    assert sample("vouchers_codes_redeemed_total") - before["vouchers_codes_redeemed_total"] == 1
    assert sample("vouchers_out_of_stock_total") - before["vouchers_out_of_stock_total"] == 1
    assert sample("vouchers_fraud_decisions_total", outcome="allow") - allowed_before == 3
    # and /metrics shows them in Prometheus text
    text = Client().get("/metrics").content.decode()
    assert f"vouchers_codes_redeemed_total {sample('vouchers_codes_redeemed_total')}" in text
    assert "# TYPE vouchers_webhook_deliveries_total counter" in text
    assert "# TYPE vouchers_statement_total_minor_units_total counter" in text


@pytest.fixture
def production_metrics(settings):
    settings.PRODUCTION = True
    settings.METRICS_TOKEN = "s3cret-token"
    settings.METRICS_ALLOWED_IPS = ["10.1.0.0/16"]


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 404),
    ({"HTTP_AUTHORIZATION": "Bearer wrong"}, 404),
    ({"HTTP_AUTHORIZATION": "s3cret-token"}, 404),
    ({"HTTP_AUTHORIZATION": "Bearer s3cret-token"}, 200),
    ({"REMOTE_ADDR": "10.1.2.3"}, 200),
    ({"REMOTE_ADDR": "10.2.0.1"}, 404),
])
def test_metrics_in_production_need_the_token_or_an_allowed_address(production_metrics, headers, status):
    response = Client().get("/metrics", **headers)
    assert response.status_code == status
    if status == 200:
        assert response["Content-Type"].startswith("text/plain")
    else:
        assert "vouchers_" not in response.content.decode()


def test_metrics_in_production_without_token_or_list_are_closed(settings):
    settings.PRODUCTION, settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = True, "", []
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404
    assert Client().get("/metrics").status_code == 404
