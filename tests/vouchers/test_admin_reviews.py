"""The review queue in the admin: issuances held for fraud review, approved or denied by a reviewer.

Issuances are held through the storefront API and the default fraud rules (a new
customer's order above 5 codes is reviewed), as in production.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.core.cache import caches
from django.urls import reverse
from django.utils import timezone

from config.errors import NotFound
from fraud.models import RiskAssessment
from tests.factories import StaffFactory, UserFactory, grant_app_permissions
from tests.html import cell, links
from tests.snapshots import world
from tests.vouchers.api.conftest import make_shop
from vouchers.crypto import decrypt_code
from vouchers.models import Code, CodeEvent, Issuance

QUEUE = "admin:vouchers_issuance_review_queue"
ISSUANCES = "admin:vouchers_issuance_changelist"


@pytest.fixture(autouse=True)
def clean_counters(settings):
    """Fraud counters and rate limits start empty (local memory, or this run's Redis db)."""
    caches["default"].clear()
    yield
    caches["default"].clear()


@pytest.fixture
def shop(db):
    return make_shop(codes=20)


@pytest.fixture
def reviewer(shop):
    member = StaffFactory(merchant=shop.product.merchant)
    grant_app_permissions(member.user, "vouchers")
    return member.user


@pytest.fixture
def reviewer_client(client, reviewer):
    client.force_login(reviewer)
    return client


def hold_for_review(shop, customer: str) -> Issuance:
    """A new customer's order of 6 codes, held for review by the default fraud rules."""
    response = shop.client.issue(shop.product.sku, quantity=6, customer=customer)
    assert response.status_code == 201
    assert response.json()["status"] == "review"
    return Issuance.objects.get(pk=response.json()["id"])


def review_url(issuance: Issuance, decision: str) -> str:
    return reverse("admin:vouchers_issuance_review", args=[issuance.pk, decision])


def issuance_page(issuance: Issuance) -> str:
    return reverse("admin:vouchers_issuance_change", args=[issuance.pk])


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def codes_of(issuance: Issuance) -> list[tuple[str, str]]:
    return list(Code.objects.filter(issuance=issuance).order_by("pk").values_list("state", "last4"))


def plaintexts_of(shop) -> list[str]:
    return [decrypt_code(code) for code in Code.objects.filter(batch__product=shop.product)]


def assert_no_plaintext(html: str, shop) -> None:
    leaked = [code for code in plaintexts_of(shop) if code in html]
    assert leaked == []


# --- the queue ------------------------------------------------------------------------


def test_the_queue_lists_held_issuances_oldest_first_with_their_fraud_decision(reviewer_client, shop):
    # given two held issuances, one sold outright, and one held for another merchant
    first = hold_for_review(shop, "new-1")
    second = hold_for_review(shop, "new-2")
    sold = shop.client.issue(shop.product.sku, quantity=1, customer="regular").json()
    other = make_shop(codes=10)
    hold_for_review(other, "new-3")
    # when
    response = reviewer_client.get(reverse(QUEUE))
    # then only this merchant's held issuances, oldest first
    assert response.status_code == 200
    rows = list(response.context["cl"].result_list)
    assert [row.pk for row in rows] == [first.pk, second.pk]
    assert sold["status"] == "issued"
    assert response.context["cl"].list_display[1:] == [
        "id", "created_at", "product", "quantity", "customer", "storefront", "review_deadline",
        "fraud_score", "fraud_reasons",
    ]
    # and each row carries its stored fraud decision (reasons and score)
    decision = RiskAssessment.objects.get(issuance_id=first.pk)
    assert (decision.outcome, decision.reasons) == ("review", ["first_orders"])
    assert [(row.decision["score"], row.decision["reasons"]) for row in rows] == [
        (decision.score, ["first_orders"]), (RiskAssessment.objects.get(issuance_id=second.pk).score,
                                             ["first_orders"]),
    ]
    html = response.content.decode()
    assert cell(html, "fraud_score") == [str(row.decision["score"]) for row in rows]
    assert cell(html, "fraud_reasons") == ["first_orders", "first_orders"]
    assert "new-1" in html and "new-2" in html and "new-3" not in html
    # the reviewer permission is explained on the page in words, never as a codename
    assert "“Can change issuance” permission" in html
    assert "vouchers.change_issuance" not in html
    assert_no_plaintext(html, shop)


def test_the_queue_costs_the_same_queries_for_one_issuance_or_ten(
    reviewer_client, shop, django_assert_max_num_queries, django_assert_num_queries
):
    # given one held issuance: count the queries of the page
    hold_for_review(shop, "new-0")
    with django_assert_max_num_queries(20) as one:
        reviewer_client.get(reverse(QUEUE))
    queries_for_one = len(one.captured_queries)  # read now: the next requests reset the query log
    # when there are ten (a shop with enough stock)
    big = make_shop(codes=60, merchant=shop.product.merchant)
    for n in range(9):
        hold_for_review(big, f"new-big-{n}")
    # then the page costs exactly as many queries (fraud decisions in one query for the page)
    with django_assert_num_queries(queries_for_one):
        response = reviewer_client.get(reverse(QUEUE))
    assert len(response.context["cl"].result_list) == 10


def test_the_issuance_list_links_to_the_queue_with_its_size(reviewer_client, shop):
    # given
    hold_for_review(shop, "new-1")
    # when
    html = reviewer_client.get(reverse(ISSUANCES)).content.decode()
    # then
    assert links(html, reverse(QUEUE)) == ["Review queue (1)"]


# --- approve --------------------------------------------------------------------------


def test_approving_from_the_issuance_page_issues_the_codes_to_the_storefront(reviewer_client, reviewer, shop):
    # given a held issuance, whose page offers Approve and Deny
    issuance = hold_for_review(shop, "new-1")
    page = reviewer_client.get(issuance_page(issuance))
    assert [label for label, _ in page.context["review_links"]] == ["Approve", "Deny"]
    confirm = reviewer_client.get(review_url(issuance, "approve"))
    assert confirm.status_code == 200
    assert "first_orders" in confirm.content.decode()
    # when the reviewer approves
    response = reviewer_client.post(review_url(issuance, "approve"), follow=True)
    # then the issuance is issued, its codes are the customer's, and the storefront gets them by GET
    assert response.redirect_chain == [(reverse(QUEUE), 302)]
    assert messages_of(response) == [
        f"Issuance {issuance.pk} approved: its 6 code(s) are issued; the storefront gets them from the API."
    ]
    assert Issuance.objects.get(pk=issuance.pk).status == Issuance.Status.ISSUED
    assert {state for state, _ in codes_of(issuance)} == {Code.State.ISSUED}
    body = shop.client.get(f"/api/v1/issuances/{issuance.pk}/").json()
    assert body["status"] == "issued"
    assert sorted(c["code"] for c in body["codes"]) == sorted(
        decrypt_code(c) for c in Code.objects.filter(issuance=issuance)
    )
    assert CodeEvent.objects.filter(issuance=issuance, action="review_approved", actor=f"user:{reviewer.pk}"
                                    ).count() == 6
    assert list(response.context["cl"].result_list) == []  # the queue is empty now


def test_admin_pages_show_an_approved_issuances_codes_by_last4_only(reviewer_client, shop):
    # given an approved issuance
    issuance = hold_for_review(shop, "new-1")
    reviewer_client.post(review_url(issuance, "approve"))
    # when
    pages = [
        reviewer_client.get(issuance_page(issuance)),
        reviewer_client.get(reverse(ISSUANCES)),
        reviewer_client.get(reverse(QUEUE)),
        reviewer_client.get(review_url(issuance, "approve"), follow=True),
    ]
    # then no page shows a plaintext; the issuance page shows the last 4 characters
    assert [p.status_code for p in pages] == [200, 200, 200, 200]
    for page in pages:
        assert_no_plaintext(page.content.decode(), shop)
    for _state, last4 in codes_of(issuance):
        assert f"…{last4}" in pages[0].content.decode()


def test_approving_twice_is_an_error_message_and_changes_nothing(reviewer_client, shop):
    # given an issuance already approved
    issuance = hold_for_review(shop, "new-1")
    reviewer_client.post(review_url(issuance, "approve"), follow=True)  # its message is shown then
    before = world()
    # when
    response = reviewer_client.post(review_url(issuance, "approve"), follow=True)
    # then
    assert response.status_code == 200
    assert messages_of(response) == [
        f"Issuance {issuance.pk}: Only an issuance in review can be decided; this one is issued."
    ]
    assert world() == before


def test_approving_a_review_past_its_deadline_releases_its_codes_with_a_message(reviewer_client, shop):
    # given a review whose deadline has passed (the release task has not run yet)
    issuance = hold_for_review(shop, "new-1")
    Issuance.objects.filter(pk=issuance.pk).update(reserved_until=timezone.now() - timedelta(seconds=1))
    # when
    response = reviewer_client.post(review_url(issuance, "approve"), follow=True)
    # then an error message, not a 500; the codes went back to stock (that is kept)
    assert response.status_code == 200
    assert messages_of(response) == [
        f"Issuance {issuance.pk}: The review waited too long; its codes went back to stock."
    ]
    assert Issuance.objects.get(pk=issuance.pk).status == Issuance.Status.EXPIRED
    assert codes_of(issuance) == []
    assert Code.objects.filter(batch__product=shop.product, state=Code.State.AVAILABLE).count() == 20


def test_a_not_found_from_the_service_is_an_error_message(reviewer_client, shop, monkeypatch):
    # given the service no longer finds the issuance for this reviewer (e.g. a concurrent change of scope)
    issuance = hold_for_review(shop, "new-1")

    def not_found(**kwargs):
        raise NotFound("No such issuance.")

    monkeypatch.setattr("vouchers.admin.views.approve_review", not_found)
    before = world()
    # when
    response = reviewer_client.post(review_url(issuance, "approve"), follow=True)
    # then
    assert response.status_code == 200
    assert messages_of(response) == [f"Issuance {issuance.pk}: No such issuance."]
    assert world() == before


def test_approve_selected_action_approves_each_held_issuance(reviewer_client, shop):
    # given two held issuances and one already denied
    first, second = hold_for_review(shop, "new-1"), hold_for_review(shop, "new-2")
    denied = hold_for_review(shop, "new-3")
    reviewer_client.post(review_url(denied, "deny"), {"reason": "bot"}, follow=True)
    # when all three are approved from the issuance list
    response = reviewer_client.post(
        reverse(ISSUANCES),
        {"action": "approve_selected", "_selected_action": [first.pk, second.pk, denied.pk]}, follow=True,
    )
    # then the held ones are issued, the denied one is refused with a message
    assert response.status_code == 200
    statuses = {i.pk: i.status for i in Issuance.objects.filter(pk__in=[first.pk, second.pk, denied.pk])}
    assert statuses == {first.pk: "issued", second.pk: "issued", denied.pk: "denied"}
    assert sorted(messages_of(response)) == sorted([
        f"Issuance {first.pk} approved: its 6 code(s) are issued; the storefront gets them from the API.",
        f"Issuance {second.pk} approved: its 6 code(s) are issued; the storefront gets them from the API.",
        f"Issuance {denied.pk}: Only an issuance in review can be decided; this one is denied.",
    ])


# --- deny -----------------------------------------------------------------------------


def test_denying_from_the_page_needs_a_reason(reviewer_client, shop):
    # given
    issuance = hold_for_review(shop, "new-1")
    before = world()
    # when
    response = reviewer_client.post(review_url(issuance, "deny"), {"reason": "  "})
    # then
    assert response.status_code == 200
    assert response.context["form"].errors == {"reason": ["This field is required."]}
    assert world() == before


def test_denying_from_the_page_returns_the_codes_to_stock_and_keeps_the_reason(
    reviewer_client, reviewer, shop
):
    # given
    issuance = hold_for_review(shop, "new-1")
    # when
    response = reviewer_client.post(review_url(issuance, "deny"), {"reason": "card testing"}, follow=True)
    # then
    assert response.redirect_chain == [(reverse(QUEUE), 302)]
    assert messages_of(response) == [f"Issuance {issuance.pk} denied: its 6 code(s) went back to stock."]
    assert Issuance.objects.get(pk=issuance.pk).status == Issuance.Status.DENIED
    assert codes_of(issuance) == []
    assert Code.objects.filter(batch__product=shop.product, state=Code.State.AVAILABLE).count() == 20
    reason = CodeEvent.objects.get(issuance=issuance, action="review_reason")
    assert (reason.actor, reason.details) == (f"user:{reviewer.pk}", {"reason": "card testing"})
    body = shop.client.get(f"/api/v1/issuances/{issuance.pk}/").json()
    assert (body["status"], body["codes"]) == ("denied", [])


def test_deny_selected_action_asks_for_a_reason_then_denies(reviewer_client, shop):
    # given
    first, second = hold_for_review(shop, "new-1"), hold_for_review(shop, "new-2")
    selected = {"action": "deny_selected", "_selected_action": [first.pk, second.pk]}
    before = world()
    # when the action is chosen in the queue
    confirm = reviewer_client.post(reverse(QUEUE), selected)
    # then a confirmation page asks for a reason; nothing is denied yet
    assert confirm.status_code == 200
    assert [i.pk for i in confirm.context["issuances"]] == [first.pk, second.pk]
    assert world() == before
    # when confirmed without a reason, then with one
    blank = reviewer_client.post(reverse(QUEUE), {**selected, "confirm": "yes", "reason": ""})
    assert blank.context["form"].errors == {"reason": ["This field is required."]}
    assert world() == before
    done = reviewer_client.post(reverse(QUEUE), {**selected, "confirm": "yes", "reason": "bots"}, follow=True)
    # then both are denied
    assert done.redirect_chain == [(reverse(QUEUE), 302)]
    assert set(Issuance.objects.filter(pk__in=[first.pk, second.pk]).values_list("status", flat=True)) == {
        "denied"
    }
    assert CodeEvent.objects.filter(action="review_reason", details={"reason": "bots"}).count() == 2


# --- who may decide -------------------------------------------------------------------


def test_staff_without_the_change_permission_see_the_queue_but_cannot_decide(client, shop):
    # given staff who may only view issuances
    member = StaffFactory(merchant=shop.product.merchant)
    member.user.user_permissions.add(Permission.objects.get(codename="view_issuance"))
    client.force_login(member.user)
    issuance = hold_for_review(shop, "new-1")
    before = world()
    # when
    queue = client.get(reverse(QUEUE))
    page = client.get(issuance_page(issuance))
    approve = client.post(review_url(issuance, "approve"))
    deny = client.post(review_url(issuance, "deny"), {"reason": "no"})
    action = client.post(reverse(QUEUE), {"action": "approve_selected", "_selected_action": [issuance.pk]})
    # then
    assert (queue.status_code, page.status_code) == (200, 200)
    assert queue.context["action_form"] is None
    assert page.context["review_links"] == []
    assert (approve.status_code, deny.status_code) == (403, 403)
    assert action.status_code == 200  # no such action for this user: the list is shown again
    assert world() == before


def test_another_merchants_reviewer_cannot_open_or_decide(client, shop):
    # given a reviewer of another merchant
    issuance = hold_for_review(shop, "new-1")
    outsider = StaffFactory()
    grant_app_permissions(outsider.user, "vouchers")
    client.force_login(outsider.user)
    before = world()
    # when
    page = client.get(review_url(issuance, "approve"))
    approve = client.post(review_url(issuance, "approve"))
    forged = client.post(reverse(QUEUE), {"action": "approve_selected", "_selected_action": [issuance.pk]})
    queue = client.get(reverse(QUEUE))
    # then the issuance does not exist for them
    assert (page.status_code, approve.status_code) == (302, 302)
    assert approve["Location"] == reverse("admin:index")
    assert forged.status_code == 302  # the action ran over none of the selected rows
    assert list(queue.context["cl"].result_list) == []
    assert world() == before


def test_a_superuser_reviews_any_merchants_issuance(client, shop):
    # given
    superuser = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(superuser)
    issuance = hold_for_review(shop, "new-1")
    # when
    response = client.post(review_url(issuance, "approve"))
    # then
    assert response.status_code == 302
    assert Issuance.objects.get(pk=issuance.pk).status == Issuance.Status.ISSUED


def test_an_issuance_not_in_review_has_no_decision_page(reviewer_client, shop):
    # given a sold issuance
    sold = Issuance.objects.get(pk=shop.client.issue(shop.product.sku, customer="regular").json()["id"])
    before = world()
    # when
    page = reviewer_client.get(issuance_page(sold))
    confirm = reviewer_client.get(review_url(sold, "deny"), follow=True)
    # then
    assert page.context["review_links"] == []
    assert confirm.redirect_chain == [(issuance_page(sold), 302)]
    assert messages_of(confirm) == [
        f"Issuance {sold.pk} is issued; only an issuance in review can be decided."
    ]
    assert world() == before


def test_an_unknown_decision_is_not_found(reviewer_client, shop):
    # given
    issuance = hold_for_review(shop, "new-1")
    before = world()
    # when
    response = reviewer_client.post(review_url(issuance, "escalate"))
    # then
    assert response.status_code == 404
    assert world() == before
