"""Every API route, walked from the URL conf, against three callers: no key, a storefront key, a partner key.

A storefront key on a partner path, and a partner key on a storefront-only path, get
404 `not_found` (existence does not leak), also for objects that exist and that the
caller is related to (its merchant's statement; a redemption the partner made). No
key gets 401. A route added without a decision here fails the first test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.core.cache import cache
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from partners.services import statements
from partners.services.keys import create_partner_key
from tests.factories import PartnerFactory
from tests.partners.conftest import make_agreement
from tests.vouchers.api.conftest import StorefrontClient, make_shop
from vouchers.webhooks.services import endpoints

pytestmark = pytest.mark.django_db

S, P, BOTH = "storefront", "partner", "both"
# Who may call each (route, method); every /api/v1/ route of the URL conf is here.
AUDIENCE: dict[str, dict[str, str]] = {
    "api/v1/products/": {"GET": S},
    "api/v1/issuances/": {"GET": S, "POST": S},
    "api/v1/issuances/<uuid:issuance_id>/": {"GET": S},
    "api/v1/issuances/<uuid:issuance_id>/confirm/": {"POST": S},
    "api/v1/issuances/<uuid:issuance_id>/cancel/": {"POST": S},
    "api/v1/codes/check/": {"POST": BOTH},
    "api/v1/redemptions/": {"GET": S, "POST": BOTH},
    "api/v1/redemptions/<uuid:redemption_id>/": {"GET": S},
    "api/v1/redemptions/<uuid:redemption_id>/reversal/": {"POST": BOTH},
    "api/v1/webhooks/endpoints/": {"GET": BOTH, "POST": BOTH},
    "api/v1/webhooks/endpoints/<uuid:endpoint_id>/": {"GET": BOTH, "PATCH": BOTH, "DELETE": BOTH},
    "api/v1/webhooks/endpoints/<uuid:endpoint_id>/rotate-secret/": {"POST": BOTH},
    "api/v1/partner/agreements/": {"GET": P},
    "api/v1/partner/statements/": {"GET": P},
    "api/v1/partner/statements/<uuid:statement_id>/": {"GET": P},
    "api/v1/partner/statements/<uuid:statement_id>/lines/": {"GET": P},
    "api/v1/partner/statements/<uuid:statement_id>/lines.csv": {"GET": P},
    "api/v1/partner/statements/<uuid:statement_id>/document/": {"GET": P},
    "api/v1/partner/statements/<uuid:statement_id>/confirm/": {"POST": P},
    "api/v1/partner/statements/<uuid:statement_id>/disputes/": {"POST": P},
    "api/v1/partner/statements/<uuid:statement_id>/reconcile/": {"POST": P},
    "api/v1/partner/keys/": {"GET": P},
    "api/v1/partner/ledger/": {"GET": P},
}
HANDLERS = ("get", "post", "put", "patch", "delete")


def api_routes() -> dict[str, list[str]]:
    """{route: [methods]} of every /api/v1/ view in the URL conf."""
    found: dict[str, list[str]] = {}

    def walk(patterns, prefix: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                route = prefix + str(entry.pattern)
                view_class = getattr(entry.callback, "view_class", None)
                if route.startswith("api/v1/") and view_class is not None:
                    found[route] = [m.upper() for m in HANDLERS if hasattr(view_class, m)]

    walk(get_resolver().url_patterns, "")
    return found


def test_every_api_route_and_method_has_a_declared_audience():
    assert api_routes() == {route: list(methods) for route, methods in AUDIENCE.items()}


@pytest.fixture
def world(settings):
    """A storefront and a partner honouring its product, each with real objects to name in paths."""
    settings.WEBHOOK_REQUIRE_HTTPS, settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False, True
    cache.clear()
    shop = make_shop(codes=6)
    partner = PartnerFactory()
    make_agreement(merchant=shop.storefront.merchant, products=[shop.product], partner=partner,
                   valid_from=datetime(2025, 12, 1, tzinfo=UTC))
    _, partner_key = create_partner_key(partner=partner, name="routes")
    partner_client = StorefrontClient(partner_key)
    issued = shop.client.issue(shop.product.sku, quantity=3).json()
    codes = [c["code"] for c in issued["codes"]]
    jan_10 = datetime(2026, 1, 10, 12, tzinfo=UTC)
    with mock.patch("django.utils.timezone.now", return_value=jan_10):
        by_shop = shop.client.redeem(codes[0]).json()["id"]
        by_partner = partner_client.redeem(codes[1]).json()["id"]
    feb_1 = datetime(2026, 2, 1, 0, 5, tzinfo=UTC)
    with mock.patch("django.utils.timezone.now", return_value=feb_1):
        (statement,) = statements.close_statements(as_of=feb_1)
    statement.dispute_deadline = statement.dispute_deadline + timedelta(days=3650)
    shop_hook = endpoints.create_endpoint(url="http://127.0.0.1:9/", events=["code.redeemed"],
                                          storefront=shop.storefront).endpoint
    partner_hook = endpoints.create_endpoint(url="http://127.0.0.1:9/", events=["code.redeemed"],
                                             partner_id=partner.pk).endpoint
    common = {"issuance_id": issued["id"], "statement_id": str(statement.pk)}
    return {
        S: (shop.client.http, {**common, "redemption_id": by_shop, "endpoint_id": str(partner_hook.pk),
                               "own_endpoint_id": str(shop_hook.pk)}),
        P: (partner_client.http, {**common, "redemption_id": by_partner, "endpoint_id": str(shop_hook.pk),
                                  "own_endpoint_id": str(partner_hook.pk)}),
    }


def path_for(route: str, values: dict[str, str], *, own: bool) -> str:
    path = "/" + route
    for name in ("issuance_id", "redemption_id", "statement_id", "endpoint_id"):
        value = values["own_endpoint_id"] if (own and name == "endpoint_id") else values[name]
        path = path.replace(f"<uuid:{name}>", value)
    assert "<" not in path, path
    return path


def call(client: APIClient, method: str, path: str):
    body = "{}" if method == "POST" else ""
    return client.generic(method, path, data=body, content_type="application/json",
                          HTTP_IDEMPOTENCY_KEY=f"routes-{method}-{path}")


def test_each_key_kind_reaches_its_own_routes_and_gets_not_found_on_the_others(world):
    calls = [(route, method, audience)
             for route, methods in AUDIENCE.items() for method, audience in methods.items()]
    calls.sort(key=lambda c: c[1] == "DELETE")  # deleting an endpoint last: the others name it
    wrong, refused_right, answered_anonymous = [], [], []
    for route, method, audience in calls:
        anonymous = call(APIClient(), method, path_for(route, world[S][1], own=False))
        if (anonymous.status_code, anonymous.json().get("code")) != (401, "not_authenticated"):
            answered_anonymous.append((route, method, anonymous.status_code))
        for kind in (S, P):
            client, values = world[kind]
            allowed = audience in (kind, BOTH)
            response = call(client, method, path_for(route, values, own=allowed))
            if allowed:
                if response.status_code == 404:
                    refused_right.append((kind, route, method, response.json()))
                continue
            body = response.json()
            if (
                (response.status_code, body.get("code")) != (404, "not_found")
                or response["Content-Type"] != "application/problem+json"
            ):
                wrong.append((kind, route, method, response.status_code, body))
    assert wrong == []
    assert refused_right == []
    assert answered_anonymous == []
