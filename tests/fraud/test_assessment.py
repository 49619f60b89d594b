"""Rules: each triggers exactly past its limit, in the defined order, and decisions are stored."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from fraud.models import AllowlistEntry, BlocklistEntry, FraudEvent, FraudRule, RiskAssessment
from fraud.services.assessment import assess, attach_assessment
from fraud.services.rules import DEFAULT_RULES, ensure_default_rules, rules_for_merchant
from tests.factories import ProductFactory

HOUR = 3600


def outcomes(make_ctx, n: int, **fields) -> list[str]:
    return [assess(ctx=make_ctx(**fields)).outcome for _ in range(n)]


# --- defaults -----------------------------------------------------------------------

def test_default_rules_are_created_once_on_first_use(merchant):
    # when the rules are read twice
    first = rules_for_merchant(merchant.pk)
    second = rules_for_merchant(merchant.pk)
    # then the defaults exist once, allow first, then deny, then review
    assert len(first) == len(DEFAULT_RULES) == FraudRule.objects.filter(merchant=merchant).count()
    assert [r.pk for r in first] == [r.pk for r in second]
    actions = [r.action for r in first]
    assert actions == sorted(actions, key=["allow", "deny", "review"].index)


def test_a_deleted_default_rule_stays_deleted(merchant):
    ensure_default_rules(merchant_id=merchant.pk)
    FraudRule.objects.filter(merchant=merchant, kind="quantity_cap").delete()
    assert ensure_default_rules(merchant_id=merchant.pk) is False
    assert not FraudRule.objects.filter(merchant=merchant, kind="quantity_cap").exists()


def test_defaults_deny_the_eleventh_order_of_a_customer_in_an_hour(make_ctx):
    assert outcomes(make_ctx, 10, customer="c1") == ["allow"] * 10
    assessment = assess(ctx=make_ctx(customer="c1"))
    assert (assessment.outcome, assessment.reasons) == ("deny", ["velocity_customer"])


def test_defaults_deny_more_than_twenty_codes_and_hold_a_new_customers_big_order(make_ctx):
    # 20 codes pass the cap but a new customer's order above 5 is held; 21 are denied
    held = assess(ctx=make_ctx(quantity=20))
    assert (held.outcome, held.reasons) == ("review", ["first_orders"])
    denied = assess(ctx=make_ctx(quantity=21))
    assert (denied.outcome, denied.reasons) == ("deny", ["quantity_cap"])


# --- velocity -----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("velocity_customer", {"customer": "cust-1"}),
        ("velocity_ip", {"ip": "203.0.113.5"}),
        ("velocity_device", {"device_id": "dev-1"}),
        ("velocity_email", {"email": "buyer@example.com"}),
    ],
)
def test_velocity_rule_denies_exactly_the_attempt_after_its_limit(make_ctx, only_rules, kind, fields):
    # given a limit of 3 per hour
    only_rules({"kind": kind, "action": "deny", "limit": 3, "window_seconds": HOUR})
    # when 4 attempts come from the same subject
    results = [assess(ctx=make_ctx(**fields)) for _ in range(4)]
    # then the 3rd (at the limit) passes and the 4th is denied with the rule's reason
    assert [r.outcome for r in results] == ["allow", "allow", "allow", "deny"]
    assert results[3].reasons == [kind]
    assert results[3].score == 100
    assert RiskAssessment.objects.filter(outcome="deny").count() == 1


@pytest.mark.parametrize("kind", ["velocity_customer", "velocity_ip", "velocity_device", "velocity_email"])
def test_velocity_ignores_an_absent_subject(make_ctx, only_rules, kind):
    only_rules({"kind": kind, "action": "deny", "limit": 1, "window_seconds": HOUR})
    assert outcomes(make_ctx, 3) == ["allow"] * 3


def test_velocity_window_slides_and_forgets(make_ctx, only_rules, clock):
    only_rules({"kind": "velocity_customer", "action": "deny", "limit": 2, "window_seconds": HOUR})
    assert outcomes(make_ctx, 2, customer="c") == ["allow", "allow"]
    clock.advance(HOUR - 1)
    assert outcomes(make_ctx, 1, customer="c") == ["deny"]
    clock.advance(HOUR + HOUR // 6 + 1)
    assert outcomes(make_ctx, 2, customer="c") == ["allow", "allow"]


def test_denied_attempts_do_not_count_towards_velocity(make_ctx, only_rules):
    # given a velocity rule (order 10) and a quantity cap (order 20), both deny
    only_rules(
        {"kind": "velocity_customer", "action": "deny", "limit": 2, "window_seconds": HOUR},
        {"kind": "quantity_cap", "action": "deny", "limit": 5},
    )
    # when two orders are refused by the cap, then three normal orders come
    assert outcomes(make_ctx, 2, customer="c", quantity=6) == ["deny", "deny"]
    results = [assess(ctx=make_ctx(customer="c")) for _ in range(3)]
    # then the refused ones were handed back: two orders pass, the third is over the limit
    assert [r.outcome for r in results] == ["allow", "allow", "deny"]
    assert results[2].details[0] == {
        "rule": results[2].details[0]["rule"], "kind": "velocity_customer", "count": 3, "limit": 2,
        "matched": True,
    }


def test_held_for_review_attempts_count_towards_velocity(make_ctx, only_rules):
    only_rules({"kind": "velocity_customer", "action": "review", "limit": 1, "window_seconds": HOUR})
    assert outcomes(make_ctx, 3, customer="c") == ["allow", "review", "review"]
    assert RiskAssessment.objects.order_by("pk").last().details[0]["count"] == 3


def test_velocity_ip_groups_ipv6_by_64(make_ctx, only_rules):
    only_rules({"kind": "velocity_ip", "action": "deny", "limit": 2, "window_seconds": HOUR})
    assert outcomes(make_ctx, 1, ip="2001:db8:1:2::1") == ["allow"]
    assert outcomes(make_ctx, 1, ip="2001:db8:1:2:ffff:ffff:ffff:ffff") == ["allow"]
    # a third address of the same /64 is over the limit; another /64 is not
    assert outcomes(make_ctx, 1, ip="2001:db8:1:2::abcd") == ["deny"]
    assert outcomes(make_ctx, 1, ip="2001:db8:1:3::1") == ["allow"]
    assert RiskAssessment.objects.order_by("pk").last().ip_group == "2001:db8:1:3::/64"


def test_velocity_email_folds_tags_dots_and_case(make_ctx, only_rules):
    only_rules({"kind": "velocity_email", "action": "deny", "limit": 2, "window_seconds": HOUR})
    assert outcomes(make_ctx, 1, email="Jane.Doe@gmail.com") == ["allow"]
    assert outcomes(make_ctx, 1, email="janedoe+promo@googlemail.com") == ["allow"]
    assert outcomes(make_ctx, 1, email="j.a.n.e.d.o.e@GMAIL.com") == ["deny"]


def test_velocity_per_product_counts_each_product_apart(make_ctx, only_rules, merchant):
    other = ProductFactory(merchant=merchant)
    only_rules({"kind": "velocity_customer", "action": "deny", "limit": 1, "window_seconds": HOUR,
                "per_product": True})
    assert outcomes(make_ctx, 1, customer="c") == ["allow"]
    assert outcomes(make_ctx, 1, customer="c", product_id=other.pk) == ["allow"]
    assert outcomes(make_ctx, 1, customer="c") == ["deny"]


def test_a_rule_for_one_product_ignores_the_others(make_ctx, only_rules, merchant, product):
    other = ProductFactory(merchant=merchant)
    only_rules({"kind": "velocity_customer", "action": "deny", "limit": 1, "window_seconds": HOUR,
                "product": product})
    assert outcomes(make_ctx, 3, customer="c", product_id=other.pk) == ["allow"] * 3
    assert outcomes(make_ctx, 2, customer="c") == ["allow", "deny"]


def test_velocity_counting_units_adds_quantities(make_ctx, only_rules):
    only_rules({"kind": "velocity_customer", "action": "deny", "limit": 5, "window_seconds": HOUR,
                "count_units": True})
    assert outcomes(make_ctx, 1, customer="c", quantity=3) == ["allow"]
    assert outcomes(make_ctx, 1, customer="c", quantity=2) == ["allow"]
    assert outcomes(make_ctx, 1, customer="c", quantity=1) == ["deny"]


# --- quantity, first orders, farming ----------------------------------------------------

def test_quantity_cap_allows_the_limit_and_denies_one_more(make_ctx, only_rules):
    only_rules({"kind": "quantity_cap", "action": "deny", "limit": 4})
    assert assess(ctx=make_ctx(quantity=4)).outcome == "allow"
    denied = assess(ctx=make_ctx(quantity=5))
    assert (denied.outcome, denied.reasons) == ("deny", ["quantity_cap"])


def _issued_orders(storefront, product, customer: str, n: int) -> None:
    from vouchers.models import Issuance

    for _ in range(n):
        Issuance.objects.create(storefront=storefront, product=product, quantity=1, customer=customer,
                                status=Issuance.Status.ISSUED)


def test_first_orders_rule_holds_a_new_customers_large_order(make_ctx, only_rules, storefront, product):
    # given: first 3 orders may hold at most 5 codes
    only_rules({"kind": "first_orders", "action": "review", "limit": 5, "new_customer_orders": 3})
    _issued_orders(storefront, product, "new", 2)
    _issued_orders(storefront, product, "known", 3)
    # then a customer with 2 orders is held above 5 codes, not at 5
    assert assess(ctx=make_ctx(customer="new", quantity=5)).outcome == "allow"
    held = assess(ctx=make_ctx(customer="new", quantity=6))
    assert (held.outcome, held.reasons, held.score) == ("review", ["first_orders"], 70)
    # and one with 3 orders is no longer new; an anonymous buyer is new
    assert assess(ctx=make_ctx(customer="known", quantity=6)).outcome == "allow"
    assert assess(ctx=make_ctx(quantity=6)).outcome == "review"


def test_first_orders_counts_only_issued_orders_of_this_merchant(make_ctx, only_rules, product):
    from tests.factories import StorefrontFactory
    from vouchers.models import Issuance

    only_rules({"kind": "first_orders", "action": "review", "limit": 1, "new_customer_orders": 1})
    elsewhere = StorefrontFactory()
    Issuance.objects.create(storefront=elsewhere, product=product, quantity=1, customer="c",
                            status=Issuance.Status.ISSUED)
    assert assess(ctx=make_ctx(customer="c", quantity=2)).outcome == "review"


def test_first_orders_asks_the_callers_count_only_when_the_rule_needs_it(make_ctx, only_rules):
    # given a caller that counts previous orders (here: always 5) and records each question
    asked = []

    def previous_orders(*, merchant_id: int, customer: str, at_most: int) -> int:
        asked.append((merchant_id, customer, at_most))
        return 5

    only_rules({"kind": "first_orders", "action": "review", "limit": 2, "new_customer_orders": 3})
    # when an order within the limit, an anonymous one and a large one are assessed
    small = assess(ctx=make_ctx(customer=" c ", quantity=2, previous_orders=previous_orders))
    anonymous = assess(ctx=make_ctx(quantity=3, previous_orders=previous_orders))
    large = assess(ctx=make_ctx(customer=" c ", quantity=3, previous_orders=previous_orders))
    # then only the large named one asked, for at most 3 orders of the trimmed customer, and passed
    assert [small.outcome, anonymous.outcome, large.outcome] == ["allow", "review", "allow"]
    assert asked == [(large.merchant_id, "c", 3)]
    # and a context without a way of counting treats the customer as new
    assert assess(ctx=make_ctx(customer="c", quantity=3, previous_orders=None)).outcome == "review"


def test_the_stored_context_leaves_out_the_order_counter(make_ctx):
    stored = make_ctx(customer="c").as_json()
    assert "previous_orders" not in stored
    assert stored["customer"] == "c"


@pytest.mark.parametrize(
    ("kind", "where"),
    [("farming_device", {"device_id": "phone-1"}), ("farming_ip", {"ip": "2001:db8::1"})],
)
def test_farming_rule_holds_the_customer_after_its_limit(make_ctx, only_rules, kind, where):
    # given at most 3 customers on one device or IP per day
    only_rules({"kind": kind, "action": "review", "limit": 3, "window_seconds": 24 * HOUR})
    # when customers 1..3 come, 1 again, then a 4th (IPv6: another address of the /64)
    later = {"ip": "2001:db8::ffff"} if "ip" in where else where
    results = [assess(ctx=make_ctx(customer=f"c{i}", **where)).outcome for i in (1, 2, 3, 1)]
    fourth = assess(ctx=make_ctx(customer="c4", **later))
    # then only the 4th distinct customer is held
    assert results == ["allow"] * 4
    assert (fourth.outcome, fourth.reasons) == ("review", [kind])


# --- lists and order ----------------------------------------------------------------

@pytest.mark.parametrize(
    ("kind", "value", "fields"),
    [
        ("customer", "bad-cust", {"customer": "bad-cust"}),
        ("email", "Fraud.Ster+x@gmail.com", {"email": "fraudster@gmail.com"}),
        ("email_domain", "mailinator.com", {"email": "x@eu.mailinator.com"}),
        ("device", "dev-9", {"device_id": "dev-9"}),
        ("ip", "203.0.113.9", {"ip": "::ffff:203.0.113.9"}),
        ("cidr", "198.51.100.0/24", {"ip": "198.51.100.77"}),
        ("cidr", "2001:db8:abcd::/48", {"ip": "2001:db8:abcd:12::1"}),
    ],
)
def test_blocklist_denies_every_kind_of_entry(make_ctx, merchant, kind, value, fields):
    # given a blocklist entry, stored normalised as the admin would
    entry = BlocklistEntry(merchant=merchant, kind=kind, value=value)
    entry.full_clean()
    entry.save()
    # then a matching request is denied with the entry's kind as reason; others pass
    denied = assess(ctx=make_ctx(**fields))
    assert (denied.outcome, denied.reasons) == ("deny", [f"blocklist_{kind}"])
    assert assess(ctx=make_ctx(customer="someone", ip="192.0.2.1", email="a@example.org")).outcome == "allow"


def test_an_expired_blocklist_entry_no_longer_blocks(make_ctx, merchant):
    BlocklistEntry.objects.create(merchant=merchant, kind="device", value="d",
                                  expires_at=timezone.now() - timedelta(seconds=1))
    assert assess(ctx=make_ctx(device_id="d")).outcome == "allow"


def test_another_merchants_blocklist_does_not_apply(make_ctx):
    from tests.factories import MerchantFactory

    BlocklistEntry.objects.create(merchant=MerchantFactory(), kind="customer", value="c")
    assert assess(ctx=make_ctx(customer="c")).outcome == "allow"


def test_allowlist_beats_blocklist_and_counts_nothing(make_ctx, merchant):
    # given the customer allow-listed and the IP blocked
    AllowlistEntry.objects.create(merchant=merchant, kind="customer", value="vip")
    BlocklistEntry.objects.create(merchant=merchant, kind="ip", value="203.0.113.1")
    # when the VIP orders from the blocked IP
    assessment = assess(ctx=make_ctx(customer="vip", ip="203.0.113.1"))
    # then it is allowed, score 0, and no velocity was counted
    assert (assessment.outcome, assessment.reasons, assessment.score) == ("allow", ["allowlist_customer"], 0)
    assert [d["kind"] for d in assessment.details] == ["allowlist"]


def test_block_beats_review(make_ctx, merchant, only_rules):
    # given a review rule that always matches, ordered before the blocklist
    only_rules(
        {"kind": "quantity_cap", "action": "review", "limit": 0, "order": 1},
        {"kind": "blocklist", "action": "deny", "order": 50, "on_redeem": True},
    )
    BlocklistEntry.objects.create(merchant=merchant, kind="device", value="d")
    # then the block decides (deny rules run before review rules)
    assessment = assess(ctx=make_ctx(device_id="d"))
    assert (assessment.outcome, assessment.reasons) == ("deny", ["blocklist_device"])


def test_first_deny_wins_and_reviews_are_all_collected(make_ctx, only_rules):
    only_rules(
        {"kind": "quantity_cap", "action": "review", "limit": 1},
        {"kind": "velocity_device", "action": "review", "limit": 0, "window_seconds": HOUR},
    )
    held = assess(ctx=make_ctx(quantity=2, device_id="d"))
    assert (held.outcome, held.reasons, held.score) == ("review", ["quantity_cap", "velocity_device"], 80)
    only_rules(
        {"kind": "quantity_cap", "action": "deny", "limit": 1},
        {"kind": "velocity_device", "action": "deny", "limit": 0, "window_seconds": HOUR},
    )
    denied = assess(ctx=make_ctx(quantity=2, device_id="d"))
    assert (denied.outcome, denied.reasons) == ("deny", ["quantity_cap"])


def test_disabled_rules_and_rules_for_other_actions_are_skipped(make_ctx, only_rules):
    rule, = only_rules({"kind": "quantity_cap", "action": "deny", "limit": 1})
    assert assess(ctx=make_ctx(action="redeem", quantity=2)).outcome == "allow"
    rule.enabled = False
    rule.save()
    assert assess(ctx=make_ctx(quantity=2)).outcome == "allow"


def test_blocklist_applies_to_redemptions_and_checks_by_default(make_ctx, merchant):
    BlocklistEntry.objects.create(merchant=merchant, kind="ip", value="192.0.2.66")
    assert [assess(ctx=make_ctx(action=a, ip="192.0.2.66")).outcome for a in ("redeem", "check")] == [
        "deny", "deny",
    ]


def test_rule_validation_refuses_an_allowing_velocity_rule(merchant):
    rule = FraudRule(merchant=merchant, name="x", kind="velocity_ip", action="allow", limit=1,
                     window_seconds=60)
    with pytest.raises(ValidationError) as exc:
        rule.full_clean()
    assert set(exc.value.message_dict) == {"action"}
    with pytest.raises(IntegrityError), transaction.atomic():
        rule.save()
    assert not FraudRule.objects.filter(name="x").exists()


def test_rule_validation_requires_limit_and_window(merchant):
    rule = FraudRule(merchant=merchant, name="y", kind="farming_ip", action="review")
    with pytest.raises(ValidationError) as exc:
        rule.full_clean()
    assert set(exc.value.message_dict) == {"limit", "window_seconds"}


# --- storing ------------------------------------------------------------------------

def test_a_decision_is_stored_with_its_context_reasons_and_event(make_ctx, merchant, storefront, product,
                                                                  only_rules):
    only_rules({"kind": "quantity_cap", "action": "deny", "limit": 1})
    # when a request is denied
    assessment = assess(ctx=make_ctx(customer="c", ip="2001:db8::7", device_id="d", email="e@example.com",
                                     quantity=3))
    # then the row holds the decision and the context
    row = RiskAssessment.objects.get()
    assert row.pk == assessment.pk
    assert (row.merchant_id, row.action, row.outcome, row.score, row.reasons) == (
        merchant.pk, "issue", "deny", 100, ["quantity_cap"])
    assert (row.storefront_id, row.product_id, row.quantity, row.api_key_id) == (
        storefront.pk, product.pk, 3, "key-1")
    assert (row.customer, row.ip, row.ip_group, row.device_id, row.email) == (
        "c", "2001:db8::7", "2001:db8::/64", "d", "e@example.com")
    # and one low-severity event records the denial, without an alert
    event = FraudEvent.objects.get()
    assert (event.kind, event.severity, event.decision, event.assessment_id, event.alert) == (
        "risk_decision", "low", "deny", row.pk, "not_needed")
    assert event.context["reasons"] == ["quantity_cap"]


def test_an_allowed_request_is_stored_without_an_event(make_ctx):
    # given the default rules, one anonymous code: 1 of the 20-code cap is the nearest limit
    assessment = assess(ctx=make_ctx())
    # then it is allowed with score round(49 * 1 / 20) and no reason
    assert (assessment.outcome, assessment.reasons, assessment.score) == ("allow", [], 2)
    assert RiskAssessment.objects.count() == 1
    assert FraudEvent.objects.count() == 0


def test_allow_score_grows_towards_the_limit(make_ctx, only_rules):
    only_rules({"kind": "velocity_customer", "action": "deny", "limit": 2, "window_seconds": HOUR})
    assert [assess(ctx=make_ctx(customer="c")).score for _ in range(2)] == [24, 49]


def test_attach_links_the_issuance_once(make_ctx, storefront, product):
    from vouchers.models import Issuance

    issuance = Issuance.objects.create(storefront=storefront, product=product, quantity=1,
                                       status=Issuance.Status.REVIEW)
    assessment = assess(ctx=make_ctx())
    # when attached
    attach_assessment(assessment=assessment, issuance_id=issuance.pk)
    # then the issuance finds its assessment (the review queue starts here)
    assert list(issuance.risk_assessments.all()) == [assessment]
    # and a second link, or a link of the wrong kind, is refused and changes nothing
    other = Issuance.objects.create(storefront=storefront, product=product, quantity=1,
                                    status=Issuance.Status.ISSUED)
    with pytest.raises(ValueError, match="already attached"):
        attach_assessment(assessment=assessment, issuance_id=other.pk)
    with pytest.raises(ValueError, match="exactly one"):
        attach_assessment(assessment=assess(ctx=make_ctx()))
    redeem = assess(ctx=make_ctx(action="redeem"))
    with pytest.raises(ValueError, match="cannot judge"):
        attach_assessment(assessment=redeem, issuance_id=other.pk)
    assert RiskAssessment.objects.get(pk=assessment.pk).issuance_id == issuance.pk
    assert not RiskAssessment.objects.filter(issuance=other).exists()


def test_context_refuses_an_unknown_action(merchant):
    from fraud.context import RiskContext

    with pytest.raises(ValueError):
        RiskContext(merchant_id=merchant.pk, action="sell", api_key_id="")


def test_an_assessment_needs_a_merchant(make_ctx):
    with pytest.raises(ValueError, match="merchant"):
        assess(ctx=make_ctx(merchant_id=None))
    assert RiskAssessment.objects.count() == 0
