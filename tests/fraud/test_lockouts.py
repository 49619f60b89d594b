"""Lockouts after failed attempts, with a growing back-off; time is frozen, never slept."""

from __future__ import annotations

import pytest

from fraud.exceptions import TooManyAttempts
from fraud.models import FraudEvent
from fraud.services.lockouts import ensure_not_locked_out, record_failed_attempt

WINDOW = 15 * 60


def fail(ctx, n: int = 1) -> None:
    for _ in range(n):
        record_failed_attempt(ctx=ctx, reason="unknown_code")


def retry_after(ctx) -> int | None:
    """Seconds the context is locked for, or None if it may try."""
    try:
        ensure_not_locked_out(ctx=ctx)
    except TooManyAttempts as exc:
        assert exc.status == 429
        assert exc.code == "too_many_attempts"
        assert exc.extra["retry_after"] == exc.retry_after
        return exc.retry_after
    return None


def test_a_customer_is_locked_at_the_fifth_failure_not_the_fourth(make_ctx):
    ctx = make_ctx(action="redeem", customer="c")
    fail(ctx, 4)
    assert retry_after(ctx) is None
    fail(ctx)
    assert retry_after(ctx) == 60


def test_an_ip_is_locked_at_the_tenth_failure_and_ipv6_by_its_64(make_ctx):
    # given 9 failures from addresses of one /64 (no customer given)
    for i in range(9):
        fail(make_ctx(action="check", ip=f"2001:db8:7:7::{i + 1:x}"))
    assert retry_after(make_ctx(ip="2001:db8:7:7::99")) is None
    # when a 10th comes from yet another address of it
    fail(make_ctx(action="check", ip="2001:db8:7:7:abcd::1"))
    # then the whole /64 is locked, not its neighbour
    assert retry_after(make_ctx(ip="2001:db8:7:7::1234")) == 60
    assert retry_after(make_ctx(ip="2001:db8:7:8::1")) is None


def test_an_api_key_is_locked_at_its_own_threshold(make_ctx, settings):
    settings.FRAUD_LOCKOUT_THRESHOLDS = {"api_key": 3, "customer": 5, "ip": 10}
    fail(make_ctx(customer="a"), 1)
    fail(make_ctx(customer="b"), 1)
    assert retry_after(make_ctx(customer="z")) is None
    fail(make_ctx(customer="c"), 1)
    assert retry_after(make_ctx(customer="z")) == 60
    assert retry_after(make_ctx(api_key_id="key-2", customer="z")) is None


def test_back_off_doubles_with_each_lockout_up_to_the_cap(make_ctx, clock, settings):
    settings.FRAUD_LOCKOUT_MAX_SECONDS = 200
    ctx = make_ctx(customer="c")
    waits = []
    for _ in range(4):
        fail(ctx, 5)
        waits.append(retry_after(ctx))
        clock.advance(waits[-1] - 1)
        assert retry_after(ctx) == 1  # still locked one second before the end
        clock.advance(1)
        assert retry_after(ctx) is None
    assert waits == [60, 120, 200, 200]


def test_after_a_lockout_the_count_starts_again(make_ctx, clock):
    ctx = make_ctx(customer="c")
    fail(ctx, 5)
    clock.advance(60)
    fail(ctx, 4)
    assert retry_after(ctx) is None


def test_strikes_are_forgotten_after_a_day(make_ctx, clock):
    ctx = make_ctx(customer="c")
    fail(ctx, 5)
    clock.advance(24 * 3600)
    fail(ctx, 5)
    assert retry_after(ctx) == 60


def test_failures_outside_the_window_do_not_add_up(make_ctx, clock):
    ctx = make_ctx(customer="c")
    fail(ctx, 4)
    clock.advance(WINDOW + WINDOW // 6 + 1)
    fail(ctx, 4)
    assert retry_after(ctx) is None


def test_retry_after_is_the_longest_of_the_locked_scopes(make_ctx, clock):
    fail(make_ctx(customer="c"), 5)  # customer locked for 60 s
    clock.advance(30)
    fail(make_ctx(ip="192.0.2.1"), 10)  # IP locked for 60 s from now
    assert retry_after(make_ctx(customer="c", ip="192.0.2.1")) == 60
    assert retry_after(make_ctx(customer="c")) == 30


def test_lockouts_are_per_merchant(make_ctx):
    from tests.factories import MerchantFactory

    fail(make_ctx(customer="c", ip="192.0.2.1", api_key_id=""), 10)
    other = make_ctx(merchant_id=MerchantFactory().pk, customer="c", ip="192.0.2.1", api_key_id="")
    assert retry_after(other) is None


def test_a_lockout_is_recorded_as_a_low_event_without_alert(make_ctx, eager_alerts, mailoutbox):
    ctx = make_ctx(customer="c", ip="192.0.2.5")
    with eager_alerts():
        fail(ctx, 5)
    event = FraudEvent.objects.get()
    assert (event.kind, event.severity, event.decision, event.alert) == ("lockout", "low", "lockout",
                                                                          "not_needed")
    assert {k: event.context[k] for k in ("scope", "reason", "failures", "strike", "lockout_seconds")} == {
        "scope": "customer", "reason": "unknown_code", "failures": 5, "strike": 1, "lockout_seconds": 60,
    }
    assert mailoutbox == []


def test_an_api_key_lockout_alerts_the_merchant(make_ctx, settings, eager_alerts, mailoutbox, merchant):
    from tests.factories import StaffFactory

    StaffFactory(merchant=merchant, user__email="ops@merchant.example")
    settings.FRAUD_LOCKOUT_THRESHOLDS = {"api_key": 2, "customer": 5, "ip": 10}
    with eager_alerts():
        fail(make_ctx(), 2)
    event = FraudEvent.objects.get()
    assert (event.kind, event.severity, event.alert) == ("lockout", "high", "sent")
    assert [m.to for m in mailoutbox] == [["ops@merchant.example"]]


def test_checking_a_lock_writes_nothing(make_ctx):
    ctx = make_ctx(customer="c")
    fail(ctx, 5)
    events = FraudEvent.objects.count()
    for _ in range(3):
        retry_after(ctx)
    assert FraudEvent.objects.count() == events == 1


def test_an_unknown_reason_is_a_bug(make_ctx):
    with pytest.raises(ValueError):
        record_failed_attempt(ctx=make_ctx(customer="c"), reason="typo")
    assert retry_after(make_ctx(customer="c")) is None


def test_a_partner_without_merchant_is_counted_under_no_merchant(make_ctx, eager_alerts, mailoutbox,
                                                                 settings):
    # given a partner's failures on codes that were not found (no merchant known)
    settings.ADMINS = [("Ops", "ops@service.example")]
    settings.FRAUD_LOCKOUT_THRESHOLDS = {"api_key": 3, "customer": 5, "ip": 10}
    ctx = make_ctx(merchant_id=None, storefront_id=None, partner_id=7, api_key_id="partner-key",
                   action="redeem", product_id=None)
    with eager_alerts():
        fail(ctx, 3)
    # then the partner's key is locked and the operators are told
    assert retry_after(ctx) == 60
    event = FraudEvent.objects.get()
    assert (event.merchant_id, event.severity, event.context["scope"]) == (None, "high", "api_key")
    assert [m.to for m in mailoutbox] == [["ops@service.example"]]
