"""What the fraud checks tell the rest of the service, without importing it.

fraud sits below vouchers (docs/architecture.md, "The dependency rule"): it never
imports the webhook outbox or the audit log. It announces the facts here, and the apps
that record them connect their receivers when they are ready. Both signals are sent
inside the transaction that writes the fact, so what a receiver writes commits or
rolls back with it; a receiver's error propagates to the sender.
"""

from __future__ import annotations

from django.dispatch import Signal

# A FraudEvent row was written (sender: FraudEvent; `event`). The webhook outbox turns
# a severe one into the merchant's `fraud.alert` (vouchers.webhooks.receivers).
fraud_event_recorded = Signal()

# Staff ended a lockout early (sender: FraudEvent; `event`, `user`, `reason`, `scope`
# (its name), `remaining_seconds`). The audit log records who, why and which scope
# (vouchers.audit.receivers); `lift_lockout` refuses to lift when nothing listens.
lockout_lifted = Signal()
