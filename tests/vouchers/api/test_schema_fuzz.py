"""Property-based run of schemathesis against the schema the service publishes.

The schema is fetched from /api/schema/ through the WSGI application, in process, and
every operation is called with generated requests (valid and invalid ones) as a
storefront whose product has stock, with a fresh Idempotency-Key per call. Every
response must: not be a server error, have a status code the schema documents for
the operation, the content type documented for that status, a body matching the
documented schema, and headers matching the documented ones.

Generated SKUs, codes and ids are all unknown, so only error responses would be seen;
in about half of the cases a generated value is swapped for a real one (our SKU, an
issued code, a reserved issuance, a live redemption), so success responses are
checked against the schema too.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application
from tests.vouchers.api.conftest import make_shop

CHECKS = [
    not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
    response_headers_conformance,
]

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@dataclass(frozen=True)
class Storefront:
    """Real values a storefront knows: its key, its product, and objects it made."""

    key: str
    sku: str
    codes: tuple[str, ...]
    reserved_issuance: str
    redemption: str


@pytest.fixture
def storefront(db) -> Storefront:
    # given a merchant selling one product with stock, some codes issued, one reservation
    # held and one redemption made through the API
    cache.clear()  # rate-limit and fraud counters of earlier tests
    shop = make_shop(codes=60)
    sku = shop.product.sku
    issued = shop.client.issue(sku, quantity=4, customer="fuzz-1")
    reserved = shop.client.issue(sku, quantity=2, customer="fuzz-2", reserve=True)
    assert (issued.status_code, reserved.status_code) == (201, 201)
    codes = tuple(c["code"] for c in issued.json()["codes"])
    redemption = shop.client.redeem(codes[0])
    assert redemption.status_code == 201
    return Storefront(key=shop.client.key, sku=sku, codes=codes,
                      reserved_issuance=reserved.json()["id"], redemption=redemption.json()["id"])


@contextmanager
def keeping_the_test_transaction():
    """Around one WSGI request: like Django's test client, keep the end of the request from
    closing the connection that holds the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def swap_in_real_values(case, storefront: Storefront) -> None:
    """Replace about half of the generated SKUs, codes and ids with real ones.

    The choice is a function of the generated value, so a case replays identically.
    """
    def chosen(value) -> bool:
        return isinstance(value, str) and len(value) % 2 == 0

    body = case.body if isinstance(case.body, dict) else {}
    if chosen(body.get("sku")):
        body["sku"] = storefront.sku
    if chosen(body.get("code")):
        body["code"] = storefront.codes[len(body["code"]) // 2 % len(storefront.codes)]
    params = case.path_parameters
    if chosen(params.get("issuance_id")):
        params["issuance_id"] = storefront.reserved_issuance
    if chosen(params.get("redemption_id")):
        params["redemption_id"] = storefront.redemption


@schema.parametrize()
@settings(
    max_examples=30, deadline=None,
    # the fixture's objects are shared input, not per-example state; DB round trips vary
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.filter_too_much],
)
def test_every_response_conforms_to_the_schema(case, storefront):
    # given a generated request, sent as the storefront with a fresh Idempotency-Key
    swap_in_real_values(case, storefront)
    headers = {"Authorization": f"Api-Key {storefront.key}", "Idempotency-Key": str(uuid.uuid4())}
    # when it is called through WSGI
    with keeping_the_test_transaction():
        response = case.call(headers=headers)
    # then it is no server error, and its status, content type and body are as documented
    case.validate_response(response, checks=CHECKS, headers=headers)
