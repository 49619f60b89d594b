"""`statement.issued` and `dispute.resolved`: once, in their cause's transaction, to the partner, signed."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.db import transaction

from partners.exceptions import StatementInvalidState
from partners.models import Statement
from partners.services import statements
from partners.services.keys import create_partner_key
from tests.factories import PartnerFactory
from tests.partners.conftest import make_agreement
from tests.vouchers.api.conftest import StorefrontClient
from tests.vouchers.webhooks.conftest import make_shop
from vouchers.webhooks.events import STOREFRONT_EVENT_TYPES
from vouchers.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from vouchers.webhooks.services import endpoints, outbox, secrets

pytestmark = pytest.mark.django_db
JAN_10 = datetime(2026, 1, 10, 12, tzinfo=UTC)
FEB_1 = datetime(2026, 2, 1, 0, 5, tzinfo=UTC)
SETTLEMENT = ["statement.issued", "dispute.resolved"]


def at(moment):
    return mock.patch("django.utils.timezone.now", return_value=moment)


@pytest.fixture
def january(settings):
    """Three redemptions at 1.25 USD on 10 January 2026 under a partner's agreement.

    The partner's endpoint takes the settlement events; the storefront's endpoint takes
    every event a storefront can receive.
    """
    settings.PUBLIC_BASE_URL = "https://vouchers.example.com/"
    shop = make_shop(codes=5)
    partner = PartnerFactory()
    agreement = make_agreement(
        merchant=shop.storefront.merchant, products=[shop.product], partner=partner, unit_amount_minor=125,
        valid_from=datetime(2025, 12, 1, tzinfo=UTC),
    )
    codes = [c["code"] for c in shop.client.issue(shop.product.sku, quantity=3).json()["codes"]]
    with at(JAN_10):
        for code in codes:
            assert shop.client.redeem(code).status_code == 201
    endpoints.create_endpoint(url="http://127.0.0.1:9/", events=sorted(STOREFRONT_EVENT_TYPES),
                              storefront=shop.storefront)
    shop.partner, shop.agreement, shop.codes = partner, agreement, codes
    return shop


def subscribe_partner(shop, url="http://127.0.0.1:9/", events=SETTLEMENT):
    created = endpoints.create_endpoint(url=url, events=list(events), partner_id=shop.partner.pk)
    outbox.forget_subscriptions()
    return created


def close() -> list[Statement]:
    with at(FEB_1):
        return statements.close_statements(as_of=FEB_1)


def settlement_events() -> list[WebhookEvent]:
    return list(WebhookEvent.objects.filter(type__in=SETTLEMENT).order_by("created_at", "id"))


def dispute(statement, **fields):
    with at(FEB_1 + timedelta(days=1)):
        return statements.open_dispute(statement=statement, reason="line 2 was refunded", actor="partner:1",
                                       **fields)


def test_closing_a_statement_emits_statement_issued_once_to_the_partner_only(january):
    # given
    partner_endpoint = subscribe_partner(january).endpoint
    # when January is closed, then closed again
    (statement,) = close()
    assert close() == []
    # then one event, one delivery, to the partner's endpoint
    (event,) = settlement_events()
    assert event.type == "statement.issued"
    assert list(WebhookDelivery.objects.filter(event=event).values_list("endpoint_id", flat=True)) == [
        partner_endpoint.pk]
    assert event.merchant_id == january.storefront.merchant_id
    assert event.ordering_key == f"statement:{statement.pk}"
    data = event.payload["data"]
    base = f"https://vouchers.example.com/api/v1/partner/statements/{statement.pk}/"
    assert data == {
        "statement": {
            "id": str(statement.pk), "number": 1, "merchant": january.storefront.merchant.slug,
            "currency": "USD",
            "period_start": "2026-01-01T00:00:00.000000Z", "period_end": "2026-02-01T00:00:00.000000Z",
            "timezone": "UTC", "status": "issued", "payment_status": "unpaid",
            "opening_balance": "0.00", "total": "3.75", "closing_balance": "3.75",
            "opening_minor": 0, "total_minor": 375, "closing_minor": 375, "line_count": 3,
            "issued_at": "2026-02-01T00:05:00.000000Z", "dispute_deadline": "2026-02-15T00:05:00.000000Z",
            "content_sha256": statement.content_sha256, "previous_statement_sha256": None,
        },
        "links": {
            "statement": base, "lines": base + "lines/", "lines_csv": base + "lines.csv",
            "document": base + "document/", "confirm": base + "confirm/", "disputes": base + "disputes/",
            "keys": "https://vouchers.example.com/api/v1/partner/keys/",
        },
    }


def test_nobody_subscribed_means_no_event_and_the_close_is_unchanged(january):
    (statement,) = close()
    assert statement.line_count == 3
    assert settlement_events() == []


def statements_counted() -> tuple[float, float]:
    from prometheus_client import REGISTRY

    return tuple(REGISTRY.get_sample_value(name, {"currency": "USD"}) or 0.0 for name in (
        "vouchers_statements_issued_total", "vouchers_statement_total_minor_units_total"))


def test_statement_issued_is_written_in_the_close_transaction_and_rolled_back_with_it(
    january, django_capture_on_commit_callbacks,
):
    subscribe_partner(january)
    counted_before = statements_counted()
    with pytest.raises(RuntimeError), transaction.atomic():
        (statement,) = close()
        assert [e.payload["data"]["statement"]["id"] for e in settlement_events()] == [str(statement.pk)]
        raise RuntimeError("the close's transaction fails after the statement was written")
    assert Statement.objects.count() == 0
    assert settlement_events() == []
    assert WebhookDelivery.objects.count() == 0
    assert statements_counted() == counted_before
    # and a later close emits it again, once, and counts it once committed
    with django_capture_on_commit_callbacks(execute=True):
        close()
    assert [e.type for e in settlement_events()] == ["statement.issued"]
    assert statements_counted() == (counted_before[0] + 1, counted_before[1] + 375)


def test_statement_issued_is_delivered_signed_without_a_code(january, receiver, eager_celery,
                                                              django_capture_on_commit_callbacks):
    # given
    created = subscribe_partner(january, url=receiver.url, events=["statement.issued"])
    # when
    with django_capture_on_commit_callbacks(execute=True):
        (statement,) = close()
    # then
    (request,) = receiver.requests
    body = json.loads(request.body)
    (event,) = settlement_events()
    assert (body["type"], body["id"], request.headers["Webhook-Id"]) == (
        "statement.issued", str(event.pk), str(event.pk))
    assert body["data"]["statement"]["content_sha256"] == statement.content_sha256
    assert secrets.verify(request.headers["Webhook-Signature"], secret=created.secret, body=request.body,
                          now=int(time.time()))
    for code in january.codes:
        assert code.encode() not in request.body
    assert WebhookDelivery.objects.get().status == "succeeded"


def test_accepting_a_dispute_emits_dispute_resolved_with_the_adjustment(january):
    # given a disputed statement
    subscribe_partner(january)
    (statement,) = close()
    opened = dispute(statement, lines=[2], claimed_amount_minor=-125)
    # when staff accept it
    with at(FEB_1 + timedelta(days=2)):
        resolved = statements.resolve_dispute(dispute=opened, accept=True, reason="refund confirmed",
                                              actor="user:1")
    # then
    assert [e.type for e in settlement_events()] == ["statement.issued", "dispute.resolved"]
    event = settlement_events()[1]
    assert event.ordering_key == f"statement:{statement.pk}"
    data = event.payload["data"]
    entry = resolved.adjustment
    assert data["dispute"] == {
        "id": str(opened.pk), "statement_id": str(statement.pk), "status": "accepted",
        "reason": "line 2 was refunded", "lines": [2],
        "claimed_amount": "-1.25", "claimed_amount_minor": -125,
        "currency": "USD", "resolution_reason": "refund confirmed",
        "adjustment": {"entry_id": entry.pk, "seq": entry.seq, "amount": "-1.25", "amount_minor": -125,
                       "currency": "USD"},
        "opened_at": data["dispute"]["opened_at"], "resolved_at": "2026-02-03T00:05:00.000000Z",
    }
    assert (data["statement"]["id"], data["statement"]["status"]) == (str(statement.pk), "resolved")
    assert data["statement"]["content_sha256"] == statement.content_sha256
    ledger = f"https://vouchers.example.com/api/v1/partner/ledger/?after={entry.seq - 1}"
    assert data["links"]["ledger"] == ledger
    assert data["links"]["document"].endswith(f"/partner/statements/{statement.pk}/document/")


def test_rejecting_a_dispute_emits_it_once_and_a_second_resolution_emits_nothing(january):
    subscribe_partner(january)
    (statement,) = close()
    first, second = dispute(statement), dispute(statement)
    with at(FEB_1 + timedelta(days=2)):
        statements.resolve_dispute(dispute=first, accept=False, reason="the line stands", actor="user:1")
        with pytest.raises(StatementInvalidState):
            statements.resolve_dispute(dispute=first, accept=False, reason="again", actor="user:1")
    (event,) = WebhookEvent.objects.filter(type="dispute.resolved")
    data = event.payload["data"]
    assert (data["dispute"]["status"], data["dispute"]["adjustment"], data["dispute"]["claimed_amount"]) == (
        "rejected", None, None)
    assert "ledger" not in data["links"]
    # another dispute of the statement is still open: the statement is still disputed
    assert data["statement"]["status"] == "disputed"
    assert str(second.pk) not in json.dumps(event.payload)


def test_dispute_resolved_rolls_back_with_the_resolution(january):
    subscribe_partner(january)
    (statement,) = close()
    opened = dispute(statement, claimed_amount_minor=-125)
    with pytest.raises(RuntimeError), transaction.atomic():
        statements.resolve_dispute(dispute=opened, accept=True, reason="ok", actor="user:1")
        assert WebhookEvent.objects.filter(type="dispute.resolved").count() == 1
        raise RuntimeError("the resolution's transaction fails after the event was written")
    assert WebhookEvent.objects.filter(type="dispute.resolved").count() == 0
    opened.refresh_from_db()
    assert opened.status == "open"


def test_a_partner_subscribes_through_the_api_and_only_to_partner_events(january, monkeypatch):
    from vouchers.webhooks.services import addresses

    monkeypatch.setattr(addresses, "resolve", lambda host, port: ["93.184.216.34"])
    _, key = create_partner_key(partner=january.partner, name="hooks")
    partner = StorefrontClient(key)
    path = "/api/v1/webhooks/endpoints/"
    created = partner.post(path, {"url": "https://erp.example.com/in", "events": SETTLEMENT},
                           idempotency_key=str(uuid.uuid4()))
    assert created.status_code == 201
    assert created.json()["events"] == SETTLEMENT
    endpoint = WebhookEndpoint.objects.get(pk=created.json()["id"])
    owner = (endpoint.partner_id, endpoint.storefront_id, endpoint.merchant_id)
    assert owner == (january.partner.pk, None, None)
    refused = partner.post(path, {"url": "https://erp.example.com/in", "events": ["issuance.issued"]},
                           idempotency_key=str(uuid.uuid4()))
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid_request")
    assert "issuance.issued" in refused.json()["errors"]["events"][0]
    by_storefront = january.client.post(
        path, {"url": "https://crm.example.com/in", "events": ["statement.issued"]},
        idempotency_key=str(uuid.uuid4()),
    )
    assert (by_storefront.status_code, by_storefront.json()["code"]) == (400, "invalid_request")
    assert WebhookEndpoint.objects.filter(partner=january.partner).count() == 1
    assert [e["id"] for e in partner.get(path).json()["results"]] == [str(endpoint.pk)]


def test_the_settlement_payloads_are_pinned_whole(january):
    """Both bodies exactly as sent, envelope included (docs/webhooks.md is their contract)."""
    from partners.api.serializers import statement_row

    subscribe_partner(january)
    (statement,) = close()
    opened = dispute(statement, lines=[1], claimed_amount_minor=-125)
    with at(FEB_1 + timedelta(days=2)):
        statements.resolve_dispute(dispute=opened, accept=False, reason="the line stands", actor="user:1")
    issued, resolved = settlement_events()
    statement.refresh_from_db()
    opened.refresh_from_db()
    base = f"https://vouchers.example.com/api/v1/partner/statements/{statement.pk}/"
    links = {"statement": base, "lines": base + "lines/", "lines_csv": base + "lines.csv",
             "document": base + "document/", "confirm": base + "confirm/", "disputes": base + "disputes/",
             "keys": "https://vouchers.example.com/api/v1/partner/keys/"}

    def as_sent(payload) -> str:
        return json.dumps(payload, separators=(",", ":"), sort_keys=True)

    assert as_sent(issued.payload) == as_sent({
        "id": str(issued.pk), "type": "statement.issued", "created_at": "2026-02-01T00:05:00Z",
        "data": {"statement": {**statement_row(statement), "status": "issued"}, "links": links},
    })
    assert as_sent(resolved.payload) == as_sent({
        "id": str(resolved.pk), "type": "dispute.resolved", "created_at": "2026-02-03T00:05:00Z",
        "data": {
            "dispute": {
                "id": str(opened.pk), "statement_id": str(statement.pk), "status": "rejected",
                "reason": "line 2 was refunded", "lines": [1], "claimed_amount": "-1.25",
                "claimed_amount_minor": -125, "currency": "USD", "resolution_reason": "the line stands",
                "adjustment": None, "opened_at": "2026-02-02T00:05:00.000000Z",
                "resolved_at": "2026-02-03T00:05:00.000000Z",
            },
            "statement": statement_row(statement),
            "links": links,
        },
    })
