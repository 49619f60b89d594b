"""The distributed-guessing alarm: failures across many IPs rising far above the baseline."""

from __future__ import annotations

import pytest

from fraud.models import FraudEvent
from fraud.services.lockouts import record_failed_attempt

WINDOW = 300


@pytest.fixture
def staff_email(merchant):
    from tests.factories import StaffFactory

    return StaffFactory(merchant=merchant, user__email="security@merchant.example").user.email


def fail_from_many_ips(make_ctx, n: int, *, first: int = 0, sources: int | None = None) -> None:
    """n failures, from `sources` distinct IPs in turn (default: all different)."""
    for i in range(first, first + n):
        k = i % sources if sources else i
        record_failed_attempt(ctx=make_ctx(action="check", ip=f"10.{k // 250}.{k % 250}.1", api_key_id=""),
                              reason="unknown_code")


def alarms():
    return FraudEvent.objects.filter(kind="distributed_guessing")


def test_the_alarm_goes_off_at_the_minimum_not_one_below(make_ctx, eager_alerts, mailoutbox, staff_email):
    # given 49 failures from 49 IPs in one window, with no history
    with eager_alerts():
        fail_from_many_ips(make_ctx, 49)
    assert alarms().count() == 0
    # when the 50th comes
    with eager_alerts():
        fail_from_many_ips(make_ctx, 1, first=49)
    # then one high-severity event and one alert
    event = alarms().get()
    assert (event.severity, event.alert) == ("high", "sent")
    assert {k: event.context[k] for k in ("failures_in_window", "distinct_sources", "baseline_per_window")} \
        == {"failures_in_window": 50, "distinct_sources": 50, "baseline_per_window": 0.0}
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [staff_email]
    assert "Failure rate spike" in mailoutbox[0].subject


def test_no_second_alarm_while_the_wave_goes_on(make_ctx, eager_alerts, mailoutbox, staff_email, clock):
    with eager_alerts():
        fail_from_many_ips(make_ctx, 80)
        clock.advance(WINDOW)
        fail_from_many_ips(make_ctx, 80, first=80)
    assert alarms().count() == 1
    assert len(mailoutbox) == 1


def test_failures_from_few_sources_are_left_to_the_lockouts(make_ctx):
    # 90 failures, but from only 9 IPs (each of them gets locked out at its 10th)
    fail_from_many_ips(make_ctx, 90, sources=9)
    assert alarms().count() == 0
    assert FraudEvent.objects.filter(kind="lockout").count() == 9


def test_the_alarm_compares_with_the_baseline(make_ctx, clock, settings):
    # given a small scale: 3 windows of history, x4, at least 10 failures from 3 sources
    settings.FRAUD_GUESSING_BASELINE_WINDOWS = 3
    settings.FRAUD_GUESSING_MULTIPLIER = 4
    settings.FRAUD_GUESSING_MIN_FAILURES = 10
    settings.FRAUD_GUESSING_MIN_DISTINCT_SOURCES = 3
    settings.FRAUD_LOCKOUT_THRESHOLDS = {"api_key": 1000, "customer": 1000, "ip": 1000}
    # and a usual rate of 5 failures per window
    for _ in range(3):
        fail_from_many_ips(make_ctx, 5)
        clock.advance(WINDOW)
    # when 19 come in the current window: under 4 x 5
    fail_from_many_ips(make_ctx, 19)
    assert alarms().count() == 0
    # then the 20th sets it off
    fail_from_many_ips(make_ctx, 1, first=19)
    assert alarms().get().context["baseline_per_window"] == 5.0


def test_a_new_wave_after_the_cooldown_raises_a_new_alarm(make_ctx, clock):
    fail_from_many_ips(make_ctx, 50)
    clock.advance(3600)
    fail_from_many_ips(make_ctx, 50, first=50)
    # baseline now holds the first wave (50 / 12 per window); 50 > 5 x 4.2
    assert alarms().count() == 2
