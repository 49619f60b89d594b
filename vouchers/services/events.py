"""Append-only events, written by services in the same transaction as the change."""

from __future__ import annotations

from collections.abc import Iterable

from vouchers.models import Code, CodeEvent


def actor_for_user(user) -> str:
    return f"user:{user.pk}" if user is not None and user.pk else "system"


def record_event(
    *,
    action: str,
    actor: str,
    batch_id: int | None = None,
    code: Code | None = None,
    issuance_id=None,
    from_state: str = "",
    to_state: str = "",
    details: dict | None = None,
) -> CodeEvent:
    return CodeEvent.objects.create(
        action=action, actor=actor, batch_id=batch_id if code is None else code.batch_id,
        code=code, issuance_id=issuance_id, from_state=from_state, to_state=to_state,
        details=details or {},
    )


def record_code_events(
    *, codes: Iterable[Code], action: str, actor: str, from_state: str, to_state: str,
    issuance_id=None, details: dict | None = None,
) -> None:
    """One event per code, in one INSERT."""
    CodeEvent.objects.bulk_create(
        [
            CodeEvent(
                action=action, actor=actor, batch_id=code.batch_id, code_id=code.pk,
                issuance_id=issuance_id, from_state=from_state, to_state=to_state,
                details=details or {},
            )
            for code in codes
        ]
    )
