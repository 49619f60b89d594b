"""With the counter store unreachable, fraud checks refuse; they never wave a request through.

Redis is simulated down by pointing the cache at a closed port (the shared server keeps running).
"""

from __future__ import annotations

import pytest
from django.test import override_settings

from fraud.exceptions import RiskCheckUnavailable
from fraud.models import FraudEvent, RiskAssessment
from fraud.services.assessment import assess
from fraud.services.leaks import report_canary_use
from fraud.services.lockouts import ensure_not_locked_out, record_failed_attempt
from vouchers.selectors import find_code
from vouchers.services.canaries import plant_canaries
from vouchers.services.risk import code_facts

REDIS_DOWN = override_settings(CACHES={
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:6390/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
    }
})


def test_assessment_refuses_and_stores_nothing(make_ctx):
    ctx = make_ctx(customer="c", ip="192.0.2.1")
    with REDIS_DOWN, pytest.raises(RiskCheckUnavailable) as exc:
        assess(ctx=ctx)
    assert (exc.value.status, exc.value.code, exc.value.retry_after) == (429, "risk_unavailable", 30)
    assert RiskAssessment.objects.count() == 0
    assert FraudEvent.objects.count() == 0


def test_a_blocklist_denial_needs_no_counter_and_still_applies(make_ctx, merchant):
    # a deny rule ahead of every counter decides without the store
    from fraud.models import BlocklistEntry

    BlocklistEntry.objects.create(merchant=merchant, kind="customer", value="c")
    with REDIS_DOWN:
        assessment = assess(ctx=make_ctx(customer="c"))
    assert (assessment.outcome, assessment.reasons) == ("deny", ["blocklist_customer"])


def test_lockout_check_refuses(make_ctx):
    with REDIS_DOWN, pytest.raises(RiskCheckUnavailable):
        ensure_not_locked_out(ctx=make_ctx(action="redeem", customer="c"))


def test_counting_a_failure_refuses(make_ctx):
    with REDIS_DOWN, pytest.raises(RiskCheckUnavailable):
        record_failed_attempt(ctx=make_ctx(action="check", ip="192.0.2.1"), reason="unknown_code")
    assert FraudEvent.objects.count() == 0


def test_a_canary_use_is_still_recorded_and_alerted(generated_batch, staff_user, make_ctx, eager_alerts,
                                                    mailoutbox):
    row = find_code(plant_canaries(batch=generated_batch, count=1, actor_user=staff_user)[0])
    with REDIS_DOWN, eager_alerts():
        report_canary_use(ctx=make_ctx(action="check", customer="c"), code=code_facts(row))
    event = FraudEvent.objects.get()
    assert (event.kind, event.severity, event.alert) == ("canary_use", "critical", "sent")
    assert len(mailoutbox) == 1
