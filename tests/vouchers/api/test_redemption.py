from datetime import timedelta

import pytest
from django.utils import timezone

from tests.snapshots import world
from vouchers.models import Batch, Code, CodeEvent, Merchant, Redemption
from vouchers.selectors import counted_stock_by_state, stock_by_state

pytestmark = pytest.mark.django_db


@pytest.fixture
def issued(shop):
    body = shop.client.issue(shop.product.sku, quantity=2).json()
    return [c["code"] for c in body["codes"]]


def test_redemption_returns_the_contract_fields(shop, issued):
    response = shop.client.redeem(issued[0], order_ref="pos-1", location="store 7")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "sku", "code_last4", "face_value", "currency", "redeemed_at"}
    assert (body["sku"], body["code_last4"], body["face_value"], body["currency"]) == (
        shop.product.sku, issued[0][-4:], "50.00", "USD",
    )
    redemption = Redemption.objects.get(pk=body["id"])
    assert (redemption.order_ref, redemption.location) == ("pos-1", "store 7")
    code = redemption.code
    assert code.state == "redeemed"
    assert CodeEvent.objects.filter(code=code, action="redeemed").count() == 1
    batch = shop.product.batches.get()
    assert stock_by_state([batch.pk])[batch.pk] == counted_stock_by_state(batch.pk)


def test_typed_code_is_normalised_before_lookup(shop, issued):
    typed = " " + "-".join(issued[0][i:i + 4] for i in range(0, len(issued[0]), 4)).lower() + " "
    assert shop.client.redeem(typed).status_code == 201


def test_second_redemption_is_refused_with_the_first_time_and_changes_nothing(shop, issued):
    first = shop.client.redeem(issued[0]).json()
    before = world()
    response = shop.client.redeem(issued[0])
    assert response.status_code == 409
    assert response.json()["code"] == "already_redeemed"
    assert response.json()["redeemed_at"] == first["redeemed_at"]
    assert world() == before


@pytest.mark.parametrize("which", ["unknown", "in_stock", "reserved"])
def test_unknown_and_never_issued_codes_are_unknown_code(shop, issued, which):
    # given a code nobody was issued (or that does not exist)
    if which == "reserved":
        shop.client.issue(shop.product.sku, reserve=True)
    states = dict(Code.objects.values_list("pk", "state"))
    plaintexts = dict(zip(sorted(states), shop.plaintexts(), strict=True))
    target = {
        "unknown": "ZZZZ-ZZZZ-ZZZZ-ZZZZ-Z",
        "in_stock": next(p for pk, p in plaintexts.items() if states[pk] == "available"),
        "reserved": next((p for pk, p in plaintexts.items() if states[pk] == "reserved"), None),
    }[which]
    before = world()
    # when it is redeemed
    response = shop.client.redeem(target)
    # then the answer is the same for all of them, and nothing changed
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_code"
    assert world() == before


def test_expired_code_is_410_and_void_code_409(shop, issued):
    batch = shop.product.batches.get()
    Batch.objects.filter(pk=batch.pk).update(valid_until=timezone.now() - timedelta(seconds=1))
    before = world()
    expired = shop.client.redeem(issued[0])
    assert expired.status_code == 410
    assert expired.json()["code"] == "code_expired"
    assert world() == before
    Batch.objects.filter(pk=batch.pk).update(valid_until=None, status="void")
    void = shop.client.redeem(issued[0])
    assert void.status_code == 409
    assert void.json()["code"] == "code_void"
    assert world() == before


def test_a_codes_own_expiry_counts_at_redemption(shop, issued):
    Code.objects.filter(last4=issued[0][-4:]).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert shop.client.redeem(issued[0]).json()["code"] == "code_expired"


def test_reversal_makes_the_code_redeemable_again_once(shop, issued):
    redemption_id = shop.client.redeem(issued[0]).json()["id"]
    response = shop.client.reverse(redemption_id, reason="refund")
    assert response.status_code == 200
    assert response.json()["id"] == redemption_id
    assert response.json()["reversed_at"]
    assert Code.objects.get(last4=issued[0][-4:], state="issued").redeemed_at is None
    before = world()
    again = shop.client.reverse(redemption_id)
    assert again.status_code == 409
    assert again.json()["code"] == "already_reversed"
    assert world() == before
    assert shop.client.redeem(issued[0]).status_code == 201
    assert Redemption.objects.filter(code__last4=issued[0][-4:]).count() == 2


def test_reversal_after_the_window_is_refused(shop, issued):
    redemption_id = shop.client.redeem(issued[0]).json()["id"]
    Merchant.objects.filter(pk=shop.product.merchant_id).update(reversal_window_days=1)
    Redemption.objects.filter(pk=redemption_id).update(redeemed_at=timezone.now() - timedelta(days=2))
    before = world()
    response = shop.client.reverse(redemption_id)
    assert response.status_code == 409
    assert response.json()["code"] == "reversal_window_closed"
    assert world() == before


def test_a_checks_allowing_decision_is_kept_linked_to_nothing(shop, issued):
    from fraud.models import RiskAssessment

    # given no decision of a check yet
    assert not RiskAssessment.objects.filter(action="check").exists()
    # when a code is checked (the default rules allow it)
    assert shop.client.check(issued[0], customer="cust-9").status_code == 200
    # then the allow is stored once, with what it judged, and linked to no effect
    decision = RiskAssessment.objects.get(action="check")
    assert (decision.outcome, decision.merchant_id, decision.product_id, decision.customer) == (
        "allow", shop.product.merchant_id, shop.product.pk, "cust-9")
    assert (decision.issuance_id, decision.redemption_id) == (None, None)
    assert decision.storefront_id == shop.storefront.pk and decision.created_at is not None


def test_check_reports_status_without_changing_anything(shop, issued):
    before = world()
    response = shop.client.check(issued[0])
    assert response.status_code == 200
    assert response.json() == {"status": "issued", "sku": shop.product.sku, "expires_at": None,
                               "redeemed_at": None}
    assert world() == before
    redeemed_at = shop.client.redeem(issued[0]).json()["redeemed_at"]
    assert shop.client.check(issued[0]).json()["status"] == "redeemed"
    assert shop.client.check(issued[0]).json()["redeemed_at"] == redeemed_at
    batch = shop.product.batches.get()
    Batch.objects.filter(pk=batch.pk).update(valid_until=timezone.now() - timedelta(seconds=1))
    assert shop.client.check(issued[1]).json()["status"] == "expired"
    Batch.objects.filter(pk=batch.pk).update(status="void")
    assert shop.client.check(issued[1]).json()["status"] == "void"
    unknown = shop.client.check("NOPE-NOPE-NOPE-NOPE")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "unknown_code"
