"""Leak signals: a never-issued code or a canary used by someone."""

from __future__ import annotations

import pytest

from fraud.exceptions import TooManyAttempts
from fraud.models import FraudEvent
from fraud.services.leaks import report_canary_use, report_unissued_code_use
from fraud.services.lockouts import ensure_not_locked_out
from vouchers.models import Code
from vouchers.selectors import find_code
from vouchers.services.canaries import plant_canaries
from vouchers.services.risk import code_facts


@pytest.fixture
def canaries(generated_batch, staff_user) -> list[str]:
    return plant_canaries(batch=generated_batch, count=2, actor_user=staff_user)


@pytest.mark.parametrize("action", ["check", "redeem"])
def test_a_canary_check_or_redemption_raises_a_critical_alert_naming_the_batch(
    action, canaries, generated_batch, make_ctx, eager_alerts, mailoutbox, staff_user
):
    # given a canary, as the thief would type it (lower case, no hyphens)
    row = find_code(canaries[0].replace("-", "").lower())
    assert row.is_canary
    # when it is checked or redeemed
    with eager_alerts():
        report_canary_use(ctx=make_ctx(action=action, customer="thief", ip="192.0.2.7"), code=code_facts(row))
    # then one critical event names the batch and the code by id and last 4 only
    event = FraudEvent.objects.get()
    assert (event.kind, event.severity, event.decision, event.batch_id, event.alert) == (
        "canary_use", "critical", "refused", generated_batch.pk, "sent")
    assert {k: event.context[k] for k in ("action", "batch_id", "code_id", "code_last4", "customer")} == {
        "action": action, "batch_id": generated_batch.pk, "code_id": row.pk, "code_last4": row.last4,
        "customer": "thief"}
    # and the merchant's staff got one mail naming the batch
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [staff_user.email]
    merchant = generated_batch.product.merchant
    assert mailoutbox[0].subject == (
        f"[fraud CRITICAL] {merchant.name} ({merchant.slug}): Canary code used (stock leaked) "
        f"in batch {generated_batch.pk}")
    assert f"batch_id: {generated_batch.pk}" in mailoutbox[0].body
    # naming the merchant and linking to the event's admin page
    assert f"Merchant: {merchant.name} ({merchant.slug})" in mailoutbox[0].body
    assert (f"Details in the admin: http://127.0.0.1:8000/admin/fraud/fraudevent/{event.pk}/change/"
            in mailoutbox[0].body)


def test_unissued_code_use_is_a_high_leak_event_with_an_alert(generated_batch, make_ctx, eager_alerts,
                                                             mailoutbox, staff_user):
    code = Code.objects.filter(batch=generated_batch, state="available").first()
    with eager_alerts():
        report_unissued_code_use(ctx=make_ctx(action="redeem", customer="c"), code=code_facts(code))
    event = FraudEvent.objects.get()
    assert (event.kind, event.severity, event.decision, event.batch_id, event.alert) == (
        "unissued_code_use", "high", "refused", generated_batch.pk, "sent")
    assert (event.context["code_id"], event.context["code_state"]) == (code.pk, "available")
    assert len(mailoutbox) == 1
    assert "never issued" in mailoutbox[0].body
    # the code itself is untouched
    code.refresh_from_db()
    assert code.state == "available"


def test_repeated_leak_events_of_a_batch_send_one_mail_and_count_as_failures(
    generated_batch, make_ctx, eager_alerts, mailoutbox, staff_user
):
    # given five uses of never-issued codes of one batch by one customer
    codes = list(Code.objects.filter(batch=generated_batch, state="available"))
    ctx = make_ctx(action="check", customer="insider")
    with eager_alerts():
        for code in codes:
            report_unissued_code_use(ctx=ctx, code=code_facts(code))
    # then five events, one mail, the rest throttled
    leak_events = FraudEvent.objects.filter(kind="unissued_code_use")
    assert sorted(leak_events.values_list("alert", flat=True)) == ["sent"] + ["throttled"] * 4
    assert len(mailoutbox) == 1
    # and the customer is locked out after 5 failures
    with pytest.raises(TooManyAttempts):
        ensure_not_locked_out(ctx=ctx)
    assert FraudEvent.objects.filter(kind="lockout").count() == 1
