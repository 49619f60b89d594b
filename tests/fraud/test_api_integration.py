"""Fraud checks as the storefront API applies them, end to end."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from fraud.models import BlocklistEntry, FraudEvent, RiskAssessment
from tests.factories import StaffFactory
from tests.snapshots import world
from tests.vouchers.api.conftest import make_shop
from vouchers.crypto import decrypt_code
from vouchers.models import Code, Issuance
from vouchers.selectors import counted_stock_by_state, stock_by_state
from vouchers.services.canaries import plant_canaries
from vouchers.services.reviews import approve_review, deny_review
from vouchers.tasks import release_expired_reservations

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(db):
    return make_shop(codes=10)


def counters_match(shop) -> bool:
    batch = shop.product.batches.get()
    return stock_by_state([batch.pk])[batch.pk] == counted_stock_by_state(batch.pk)


def test_blocklisted_customer_is_denied_with_reasons_and_the_decision_is_kept(shop):
    # given a blocklisted customer
    BlocklistEntry.objects.create(merchant=shop.product.merchant, kind="customer", value="mallory")
    before = world()
    # when they buy
    response = shop.client.issue(shop.product.sku, customer="mallory")
    # then refused with the reason, no code moved, the decision stored
    assert response.status_code == 403
    assert response.json()["code"] == "fraud_denied"
    assert response.json()["reasons"] == ["blocklist_customer"]
    assert world() == before
    decision = RiskAssessment.objects.get()
    assert (decision.outcome, decision.reasons) == ("deny", ["blocklist_customer"])
    assert decision.issuance_id is None
    assert FraudEvent.objects.filter(kind="risk_decision", decision="deny").count() == 1


def test_allowed_issuance_stores_its_decision_beside_it(shop):
    body = shop.client.issue(shop.product.sku, customer="alice", ip="198.51.100.4").json()
    decision = RiskAssessment.objects.get()
    assert str(decision.issuance_id) == body["id"]
    assert (decision.outcome, decision.customer, decision.ip) == ("allow", "alice", "198.51.100.4")


def test_quantity_cap_denies_at_the_cap_plus_one(shop):
    assert shop.client.issue(shop.product.sku, quantity=10, customer="a").status_code == 201
    other = make_shop(codes=30)
    response = other.client.issue(other.product.sku, quantity=21, customer="b")
    assert response.status_code == 403
    assert response.json()["reasons"] == ["quantity_cap"]


def review_issuance(shop, quantity=2) -> str:
    """A new customer's first order above 5 codes is held for review by the default rules."""
    response = shop.client.issue(shop.product.sku, quantity=6, customer=f"new-{quantity}")
    assert response.status_code == 201
    assert response.json()["status"] == "review"
    assert response.json()["codes"] == []
    return response.json()["id"]


def test_review_holds_codes_then_approval_issues_them(shop):
    # given an issuance held for review
    issuance_id = review_issuance(shop)
    assert Code.objects.filter(state="reserved").count() == 6
    assert shop.client.get("/api/v1/products/").json()["results"][0]["available"] == 4
    staff = StaffFactory(merchant=shop.product.merchant)
    # when a reviewer approves it
    approve_review(issuance_id=issuance_id, reviewer=staff.user, merchant_id=staff.merchant_id)
    # then the storefront gets the codes by GET
    body = shop.client.get(f"/api/v1/issuances/{issuance_id}/").json()
    assert body["status"] == "issued"
    assert [c["code"] for c in body["codes"]] == shop.plaintexts()[:6]
    assert counters_match(shop)


def test_review_denial_returns_codes_to_stock(shop):
    issuance_id = review_issuance(shop)
    staff = StaffFactory(merchant=shop.product.merchant)
    deny_review(issuance_id=issuance_id, reviewer=staff.user, merchant_id=staff.merchant_id, reason="bot")
    body = shop.client.get(f"/api/v1/issuances/{issuance_id}/").json()
    assert (body["status"], body["codes"]) == ("denied", [])
    assert Code.objects.filter(state="available").count() == 10
    assert counters_match(shop)


def test_reviewer_of_another_merchant_cannot_decide(shop):
    from config.errors import NotFound

    issuance_id = review_issuance(shop)
    outsider = StaffFactory()
    before = world()
    with pytest.raises(NotFound):
        approve_review(issuance_id=issuance_id, reviewer=outsider.user, merchant_id=outsider.merchant_id)
    assert world() == before


def test_undecided_review_expires_and_releases_its_codes(shop, settings):
    issuance_id = review_issuance(shop)
    Issuance.objects.filter(pk=issuance_id).update(reserved_until=timezone.now() - timedelta(seconds=1))
    assert release_expired_reservations() == 1
    assert Issuance.objects.get(pk=issuance_id).status == "expired"
    assert Code.objects.filter(state="available").count() == 10
    assert counters_match(shop)


def test_failed_redemptions_lock_the_customer_out_with_retry_after(shop):
    # given five failed attempts by one customer (the default threshold)
    for i in range(5):
        response = shop.client.redeem(f"WRONG-CODE-{i:04d}", customer="guesser")
        assert response.json()["code"] == "unknown_code"
    issued = shop.client.issue(shop.product.sku, customer="honest").json()["codes"][0]["code"]
    before = world()
    # when the same customer tries again, even with a real code
    response = shop.client.redeem(issued, customer="guesser")
    # then they are locked out and nothing changed
    assert response.status_code == 429
    assert response.json()["code"] == "too_many_attempts"
    assert int(response["Retry-After"]) >= 1
    assert world() == before
    # while another customer of the same storefront is unaffected
    assert shop.client.redeem(issued, customer="honest").status_code == 201


def test_redeeming_a_never_issued_code_raises_a_possible_leak_event(shop, eager_alerts):
    in_stock = shop.plaintexts()[0]
    with eager_alerts():  # the event is written after commit, off the request
        response = shop.client.redeem(in_stock, customer="insider")
    assert response.json()["code"] == "unknown_code"
    event = FraudEvent.objects.get(kind="unissued_code_use")
    assert event.severity == "high"
    assert event.batch_id == shop.product.batches.get().pk
    assert in_stock not in str(event.context)
    assert Code.objects.filter(state="available").count() == 10


@pytest.mark.parametrize("how", ["check", "redeem"])
def test_canary_use_raises_a_critical_alert_naming_the_batch(shop, how, eager_alerts):
    # given a canary planted in the batch and a staff member to alert
    batch = shop.product.batches.get()
    staff = StaffFactory(merchant=shop.product.merchant)
    staff.user.email = "ops@merchant.example"
    staff.user.save()
    canary = plant_canaries(batch=batch, count=1, actor_user=staff.user)[0]
    before = world()
    # when someone uses it
    with eager_alerts():
        response = shop.client.check(canary) if how == "check" else shop.client.redeem(canary)
    # then it looks like any unknown code, changes no stock, and alerts the merchant
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_code"
    assert world() == before
    event = FraudEvent.objects.get(kind="canary_use")
    assert (event.severity, event.batch_id) == ("critical", batch.pk)
    assert canary not in str(event.context)
    assert [m.to for m in mail.outbox] == [["ops@merchant.example"]]
    assert str(batch.pk) in mail.outbox[0].subject + mail.outbox[0].body
    assert canary not in mail.outbox[0].body


def test_fraud_checks_fail_closed_when_their_counter_store_is_down(shop, settings):
    # given the fraud counters on a cache nobody listens to
    settings.CACHES = {
        **settings.CACHES,
        "fraud": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:6390/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        },
    }
    settings.FRAUD_CACHE_ALIAS = "fraud"
    before = world()
    # when a customer buys
    response = shop.client.issue(shop.product.sku, customer="alice")
    # then the request is refused, not waved through, and nothing changed
    assert response.status_code == 429
    assert response.json()["code"] == "risk_unavailable"
    assert int(response["Retry-After"]) >= 1
    assert world() == before
    assert RiskAssessment.objects.count() == 0


def test_no_plaintext_code_in_any_fraud_record(shop):
    staff = StaffFactory(merchant=shop.product.merchant)
    batch = shop.product.batches.get()
    canaries = plant_canaries(batch=batch, count=2, actor_user=staff.user)
    issued = shop.client.issue(shop.product.sku, customer="c").json()["codes"][0]["code"]
    shop.client.redeem(issued, customer="c")
    shop.client.redeem(shop.plaintexts()[-1], customer="c")
    shop.client.check(canaries[0], customer="c")
    shop.client.redeem("NOT-A-REAL-CODE-123", customer="c")
    everything = [decrypt_code(c) for c in Code.objects.all()] + canaries
    stored = str(list(FraudEvent.objects.values())) + str(list(RiskAssessment.objects.values()))
    for plaintext in everything:
        assert plaintext not in stored
        assert plaintext.replace("-", "") not in stored


def test_a_review_whose_batch_was_voided_cannot_be_approved(shop):
    from vouchers.exceptions import InvalidState
    from vouchers.services.batch_status import void_batch

    issuance_id = review_issuance(shop)
    staff = StaffFactory(merchant=shop.product.merchant)
    void_batch(batch=shop.product.batches.get(), actor_user=staff.user, reason="supplier recall")
    before = world()
    with pytest.raises(InvalidState):
        approve_review(issuance_id=issuance_id, reviewer=staff.user, merchant_id=staff.merchant_id)
    assert world() == before
    deny_review(issuance_id=issuance_id, reviewer=staff.user, merchant_id=staff.merchant_id)
    assert counted_stock_by_state(shop.product.batches.get().pk)["void"] == 10
