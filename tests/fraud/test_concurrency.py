"""Velocity limits under concurrent attempts: exactly `limit` get through (PostgreSQL + Redis)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from fraud.models import RiskAssessment
from fraud.services.assessment import assess

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_twenty_concurrent_orders_against_a_limit_of_five(make_ctx, only_rules):
    # given a limit of 5 orders per customer per hour
    only_rules({"kind": "velocity_customer", "action": "deny", "limit": 5, "window_seconds": 3600})
    ctx = make_ctx(customer="rush")
    barrier = threading.Barrier(20)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            barrier.wait(timeout=30)
            outcomes.append(assess(ctx=ctx).outcome)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    # when 20 attempts run at the same time
    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    # then exactly 5 are allowed, 15 denied, and each decision is stored
    assert errors == []
    assert sorted(outcomes) == ["allow"] * 5 + ["deny"] * 15
    assert RiskAssessment.objects.filter(outcome="allow").count() == 5
    assert RiskAssessment.objects.filter(outcome="deny").count() == 15
