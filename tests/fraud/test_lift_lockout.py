"""Lifting a lockout from the fraud admin: ends it at once, restarts its back-off, audited."""

from __future__ import annotations

import pytest
from django.urls import reverse

from fraud.exceptions import TooManyAttempts
from fraud.models import FraudEvent
from fraud.services.lockouts import ensure_not_locked_out, record_failed_attempt
from tests.factories import StaffFactory, grant_app_permissions
from vouchers.audit.models import AuditEntry


@pytest.fixture
def fraud_staff(merchant):
    member = StaffFactory(merchant=merchant, user__username="fiona")
    grant_app_permissions(member.user, "fraud", "audit")
    return member.user


def lock_customer(make_ctx, customer: str = "c") -> FraudEvent:
    ctx = make_ctx(action="redeem", customer=customer)
    for _ in range(5):
        record_failed_attempt(ctx=ctx, reason="unknown_code")
    return FraudEvent.objects.get(kind="lockout", context__customer=customer)


def locked(make_ctx, customer: str = "c") -> bool:
    try:
        ensure_not_locked_out(ctx=make_ctx(customer=customer))
    except TooManyAttempts:
        return True
    return False


def lift_url(event: FraudEvent) -> str:
    return reverse("admin:fraud_fraudevent_lift_lockout", args=[event.pk])


def test_the_event_page_offers_to_lift_a_running_lockout(client, fraud_staff, make_ctx):
    event = lock_customer(make_ctx)
    client.force_login(fraud_staff)
    page = client.get(reverse("admin:fraud_fraudevent_change", args=[event.pk]))
    assert lift_url(event) in page.content.decode()


def test_lifting_ends_the_lockout_restarts_the_back_off_and_is_audited(client, fraud_staff, make_ctx,
                                                                      merchant):
    # given a customer locked out
    event = lock_customer(make_ctx)
    assert locked(make_ctx)
    client.force_login(fraud_staff)
    # when staff lift it with a reason
    response = client.post(lift_url(event), {"reason": "customer verified by phone"})
    # then the customer may try again at once, with the full number of tries
    assert response.status_code == 302
    assert not locked(make_ctx)
    for _ in range(4):
        record_failed_attempt(ctx=make_ctx(action="redeem", customer="c"), reason="unknown_code")
    assert not locked(make_ctx)
    # and the audit log says who, why and which scope
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.merchant_id, entry.actor_name, entry.reason, entry.target_id) == (
        "lockout_lifted", merchant.pk, "fiona", "customer verified by phone", str(event.pk))
    assert entry.details["scope"] == "customer"
    # and the page no longer offers it
    page = client.get(reverse("admin:fraud_fraudevent_change", args=[event.pk]))
    assert lift_url(event) not in page.content.decode()


def test_lifting_needs_a_reason_and_a_refusal_changes_nothing(client, fraud_staff, make_ctx):
    event = lock_customer(make_ctx)
    client.force_login(fraud_staff)
    response = client.post(lift_url(event), {"reason": ""})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert locked(make_ctx)
    assert AuditEntry.objects.count() == 0


def test_lifting_an_ended_lockout_is_a_form_error(client, fraud_staff, make_ctx, clock):
    event = lock_customer(make_ctx)
    clock.advance(61)
    client.force_login(fraud_staff)
    response = client.post(lift_url(event), {"reason": "late"})
    assert response.status_code == 200
    assert "has already ended" in response.content.decode()
    assert AuditEntry.objects.count() == 0


def test_another_merchants_staff_cannot_lift_it(client, make_ctx):
    event = lock_customer(make_ctx)
    other = StaffFactory(user__username="oscar")
    grant_app_permissions(other.user, "fraud", "audit")
    client.force_login(other.user)
    response = client.post(lift_url(event), {"reason": "why not"})
    assert response.status_code == 302  # not found: back to the admin home
    assert locked(make_ctx)
    assert AuditEntry.objects.count() == 0


def test_staff_without_the_change_permission_cannot_lift_it(client, merchant, make_ctx):
    event = lock_customer(make_ctx)
    member = StaffFactory(merchant=merchant)
    from django.contrib.auth.models import Permission

    member.user.user_permissions.add(Permission.objects.get(codename="view_fraudevent"))
    client.force_login(member.user)
    assert client.post(lift_url(event), {"reason": "x"}).status_code == 403
    assert locked(make_ctx)


def test_a_lift_nothing_would_audit_is_refused_and_changes_nothing(make_ctx, merchant):
    from fraud.services.lockouts import lift_lockout
    from fraud.signals import lockout_lifted
    from vouchers.audit import receivers

    event = lock_customer(make_ctx)
    staff = StaffFactory(merchant=merchant).user
    lockout_lifted.disconnect(dispatch_uid="audit.lockout_lifted")
    try:
        with pytest.raises(RuntimeError, match="must be audited"):
            lift_lockout(event=event, user=staff, reason="verified")
    finally:
        lockout_lifted.connect(receivers.lockout_lifted, dispatch_uid="audit.lockout_lifted")
    assert locked(make_ctx)
    assert AuditEntry.objects.count() == 0
