"""Staff actions other apps announce and the audit log records (connected in `AuditConfig.ready`).

fraud does not import the audit log: lifting a lockout announces itself
(`fraud.signals.lockout_lifted`, inside the lift's transaction) and the entry is
written here, in the same transaction.
"""

from __future__ import annotations

from vouchers.audit.services import record_audit


def lockout_lifted(sender, *, event, user, reason: str, scope: str, remaining_seconds: int, **kwargs) -> None:
    """Who lifted which scope's lockout, and why."""
    record_audit(
        action="lockout_lifted", merchant_id=event.merchant_id, user=user, target=event,
        target_label=f"{scope} lockout (event {event.pk})", reason=reason,
        details={"scope": scope, "event_id": event.pk, "remaining_seconds": remaining_seconds},
    )
