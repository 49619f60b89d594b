"""The fraud admin: scoped to the staff member's merchant, events browsable, evidence read-only."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from fraud.models import BlocklistEntry, FraudEvent, FraudRule, RiskAssessment
from fraud.services.rules import DEFAULT_RULES, ensure_default_rules
from tests.factories import MerchantFactory, StaffFactory, UserFactory


@pytest.fixture
def other_merchant(db):
    return MerchantFactory()


def with_fraud_permissions(user):
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="fraud"))
    return user


@pytest.fixture
def staff_client(client, merchant):
    user = with_fraud_permissions(StaffFactory(merchant=merchant).user)
    client.force_login(user)
    return client


@pytest.fixture
def superuser_client(db, client):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


def listed(response) -> list:
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def test_staff_see_their_merchants_rules_created_on_first_view(staff_client, merchant, other_merchant):
    ensure_default_rules(merchant_id=other_merchant.pk)
    rules = listed(staff_client.get(reverse("admin:fraud_fraudrule_changelist")))
    assert len(rules) == len(DEFAULT_RULES)
    assert {r.merchant_id for r in rules} == {merchant.pk}


def test_a_superuser_sees_every_merchants_rules(superuser_client, merchant, other_merchant):
    for m in (merchant, other_merchant):
        ensure_default_rules(merchant_id=m.pk)
    rules = listed(superuser_client.get(reverse("admin:fraud_fraudrule_changelist")))
    assert len(rules) == 2 * len(DEFAULT_RULES)


def test_staff_cannot_open_another_merchants_rule(staff_client, other_merchant):
    ensure_default_rules(merchant_id=other_merchant.pk)
    rule = FraudRule.objects.filter(merchant=other_merchant).first()
    response = staff_client.post(reverse("admin:fraud_fraudrule_change", args=[rule.pk]),
                                 {"name": "mine now", "enabled": ""})
    assert response.status_code == 302  # "doesn't exist", back to the index
    rule.refresh_from_db()
    assert rule.name != "mine now"


def test_staff_edit_a_rule_limit(staff_client, merchant):
    ensure_default_rules(merchant_id=merchant.pk)
    rule = FraudRule.objects.get(merchant=merchant, kind="quantity_cap")
    data = {"merchant": merchant.pk, "name": rule.name, "kind": rule.kind, "action": "review", "order": 5,
            "enabled": "on", "limit": 7, "on_issue": "on"}
    response = staff_client.post(reverse("admin:fraud_fraudrule_change", args=[rule.pk]), data)
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.action, rule.limit, rule.order) == ("review", 7, 5)


def test_an_invalid_rule_shows_form_errors_and_changes_nothing(staff_client, merchant):
    ensure_default_rules(merchant_id=merchant.pk)
    rule = FraudRule.objects.get(merchant=merchant, kind="velocity_ip")
    data = {"merchant": merchant.pk, "name": rule.name, "kind": rule.kind, "action": "allow", "order": 5,
            "enabled": "on", "limit": "", "window_seconds": 60, "on_issue": "on"}
    response = staff_client.post(reverse("admin:fraud_fraudrule_change", args=[rule.pk]), data)
    assert response.status_code == 200
    assert set(response.context["adminform"].form.errors) == {"action", "limit"}
    rule.refresh_from_db()
    assert (rule.action, rule.limit) == ("review", 20)


def test_staff_add_a_cidr_block_stored_normalised(staff_client, merchant):
    response = staff_client.post(reverse("admin:fraud_blocklistentry_add"),
                                 {"merchant": merchant.pk, "kind": "cidr", "value": " 198.51.100.7/24 "})
    assert response.status_code == 302
    assert list(BlocklistEntry.objects.values_list("merchant_id", "kind", "value")) == [
        (merchant.pk, "cidr", "198.51.100.0/24")]


@pytest.mark.parametrize(
    ("merchant_of", "value"), [("other", "198.51.100.0/24"), ("own", "not-a-range")]
)
def test_a_bad_block_is_a_form_error_and_stores_nothing(staff_client, merchant, other_merchant, merchant_of,
                                                        value):
    target = other_merchant if merchant_of == "other" else merchant
    response = staff_client.post(reverse("admin:fraud_blocklistentry_add"),
                                 {"merchant": target.pk, "kind": "cidr", "value": value})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert BlocklistEntry.objects.count() == 0


def test_events_filter_by_severity_and_search_by_customer(staff_client, merchant, other_merchant):
    for m in (merchant, other_merchant):
        FraudEvent.objects.create(merchant=m, severity="critical", kind="canary_use",
                                  context={"customer": "x"})
        FraudEvent.objects.create(merchant=m, severity="low", kind="lockout", context={"customer": "y"})
    url = reverse("admin:fraud_fraudevent_changelist")
    critical = listed(staff_client.get(url, {"severity__exact": "critical"}))
    assert [(e.merchant_id, e.severity) for e in critical] == [(merchant.pk, "critical")]
    found = listed(staff_client.get(url, {"q": "y"}))
    assert [(e.merchant_id, e.kind) for e in found] == [(merchant.pk, "lockout")]
    assert len(listed(staff_client.get(url, {"kind__exact": "lockout"}))) == 1


def test_events_and_assessments_are_read_only(staff_client, merchant):
    event = FraudEvent.objects.create(merchant=merchant, severity="low", kind="lockout", context={})
    assessment = RiskAssessment.objects.create(merchant=merchant, action="issue", outcome="deny", score=100,
                                               reasons=["quantity_cap"])
    assert staff_client.get(reverse("admin:fraud_fraudevent_add")).status_code == 403
    assert staff_client.get(reverse("admin:fraud_riskassessment_add")).status_code == 403
    assert staff_client.get(reverse("admin:fraud_fraudevent_change", args=[event.pk])).status_code == 200
    response = staff_client.post(reverse("admin:fraud_riskassessment_change", args=[assessment.pk]),
                                 {"outcome": "allow"})
    assert response.status_code == 403
    assessment.refresh_from_db()
    assert assessment.outcome == "deny"
    assert staff_client.post(reverse("admin:fraud_fraudevent_delete", args=[event.pk]),
                             {"post": "yes"}).status_code == 403
    assert FraudEvent.objects.filter(pk=event.pk).exists()


def test_staff_without_a_merchant_see_nothing(client, merchant):
    ensure_default_rules(merchant_id=merchant.pk)
    client.force_login(with_fraud_permissions(UserFactory(is_staff=True)))
    assert client.get(reverse("admin:fraud_fraudrule_changelist")).status_code == 403
