"""fraud announces its facts as signals; the system check says when one has no receiver."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks

from fraud.signals import fraud_event_recorded, lockout_lifted
from vouchers.audit import receivers as audit_receivers
from vouchers.webhooks import receivers as webhook_receivers

RECEIVERS = {
    "fraud_event_recorded": (
        fraud_event_recorded, webhook_receivers.fraud_event_recorded, "webhooks.fraud_alert",
    ),
    "lockout_lifted": (lockout_lifted, audit_receivers.lockout_lifted, "audit.lockout_lifted"),
}


def fraud_errors() -> list[str]:
    return [m.msg for m in run_checks() if m.id == "fraud.E003"]


def test_as_installed_every_fact_is_received():
    assert fraud_errors() == []


@pytest.mark.parametrize("name", sorted(RECEIVERS))
def test_a_fact_nobody_receives_fails_the_system_check(name):
    signal, receiver, uid = RECEIVERS[name]
    assert signal.disconnect(dispatch_uid=uid)
    try:
        errors = fraud_errors()
    finally:
        signal.connect(receiver, dispatch_uid=uid)
    assert len(errors) == 1 and name in errors[0]
    assert fraud_errors() == []
