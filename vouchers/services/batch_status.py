"""Pausing, resuming and voiding a batch.

A paused batch keeps its stock but sells nothing until resumed; a void batch is
finished for good: its codes still in stock become void, codes already sold stay
sold (the redemption service refuses them by the batch's status). Each change is one
conditional UPDATE of the batch's status, so two staff members acting at once cannot
both succeed, and writes its events in the same transaction (invariant 4 of docs/invariants.md).
"""

from __future__ import annotations

import json
import logging
from collections import Counter

from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from config.errors import DomainError
from vouchers.audit.services import record_audit
from vouchers.models import Batch, Code, CodeEvent, Product
from vouchers.services import stock
from vouchers.services.events import actor_for_user, record_event

logger = logging.getLogger(__name__)

MAX_REASON_LENGTH = 500

# status now -> statuses it may move to
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    Batch.Status.ACTIVE: frozenset({Batch.Status.PAUSED, Batch.Status.VOID}),
    Batch.Status.PAUSED: frozenset({Batch.Status.ACTIVE, Batch.Status.VOID}),
    Batch.Status.VOID: frozenset(),
}


class InvalidBatchTransition(DomainError):
    """The batch's status does not allow this change (e.g. resuming an active batch)."""


class VoidReasonRequired(DomainError):
    """Voiding cannot be undone, so the operator must say why."""


@transaction.atomic(durable=True)
def pause_batch(*, batch: Batch, actor_user) -> Batch:
    """Stop selling a batch's codes while keeping them in stock.

    Raises InvalidBatchTransition unless the batch is active.
    """
    _change_status(batch=batch, to_status=Batch.Status.PAUSED, actor_user=actor_user)
    return batch


@transaction.atomic(durable=True)
def resume_batch(*, batch: Batch, actor_user) -> Batch:
    """Sell a paused batch's codes again.

    Raises InvalidBatchTransition unless the batch is paused.
    """
    _change_status(batch=batch, to_status=Batch.Status.ACTIVE, actor_user=actor_user)
    return batch


@transaction.atomic(durable=True)
def void_batch(*, batch: Batch, actor_user, reason: str) -> int:
    """Void a batch for good: every code still in stock becomes void; returns how many.

    Reserved, issued and redeemed codes keep their state (a sold code stays the
    customer's; redeeming it is refused by the batch's status). On PostgreSQL the
    codes move and their events are written by one statement (UPDATE ... RETURNING
    feeding INSERT ... SELECT), so a million codes never pass through Python and the
    events name exactly the codes that moved, even while issuances claim codes of the
    same batch concurrently.

    Raises VoidReasonRequired (blank reason) or InvalidBatchTransition (already void).
    """
    reason = (reason or "").strip()
    if not reason:
        raise VoidReasonRequired()
    reason = reason[:MAX_REASON_LENGTH]
    actor = actor_for_user(actor_user)
    previous = _change_status(
        batch=batch, to_status=Batch.Status.VOID, actor_user=actor_user,
        details={"reason": reason}, record=False,
    )
    voided = _void_available_codes(batch_id=batch.pk, actor=actor, now=timezone.now())
    if voided:
        stock.record_moves(Counter({(batch.pk, Code.State.AVAILABLE, Code.State.VOID): voided}))
    record_event(
        action="batch_voided", actor=actor, batch_id=batch.pk, from_state=previous,
        to_state=Batch.Status.VOID, details={"reason": reason, "codes_voided": voided},
    )
    _audit(batch=batch, action="batch_voided", actor_user=actor_user, from_status=previous,
           to_status=Batch.Status.VOID, reason=reason, extra={"codes_voided": voided})
    logger.info("batch %s voided by %s: %s codes moved from available to void", batch.pk, actor, voided)
    return voided


def _change_status(
    *, batch: Batch, to_status: str, actor_user, details: dict | None = None, record: bool = True,
) -> str:
    """Move the batch to `to_status` with a conditional UPDATE; returns the status it left.

    The UPDATE's WHERE names the status just read, so a concurrent change makes it
    match no row and the second caller is refused instead of both succeeding.
    """
    current = Batch.objects.filter(pk=batch.pk).values_list("status", flat=True).first()
    if current is None:
        raise InvalidBatchTransition(f"batch {batch.pk} does not exist")
    if to_status not in ALLOWED_TRANSITIONS.get(current, frozenset()):
        raise InvalidBatchTransition(_refusal(current=current, to_status=to_status), status=current)
    updated = Batch.objects.filter(pk=batch.pk, status=current).update(status=to_status)
    if updated != 1:
        fresh = Batch.objects.filter(pk=batch.pk).values_list("status", flat=True).first()
        raise InvalidBatchTransition(_refusal(current=fresh, to_status=to_status), status=fresh)
    batch.status = to_status
    if record:
        actions = {Batch.Status.PAUSED: "batch_paused", Batch.Status.ACTIVE: "batch_resumed"}
        action = actions[Batch.Status(to_status)]
        record_event(
            action=action, actor=actor_for_user(actor_user), batch_id=batch.pk,
            from_state=current, to_state=to_status, details=details,
        )
        _audit(batch=batch, action=action, actor_user=actor_user, from_status=current, to_status=to_status)
    return current


def _audit(
    *, batch: Batch, action: str, actor_user, from_status: str, to_status: str, reason: str = "",
    extra: dict | None = None,
) -> None:
    """The audit entry of a status change, last in its transaction (see audit.services)."""
    merchant_id = Product.objects.filter(pk=batch.product_id).values_list("merchant_id", flat=True).get()
    record_audit(
        action=action, merchant_id=merchant_id, user=actor_user, target=batch,
        target_label=f"Batch {batch.pk}", reason=reason,
        details={"batch_id": batch.pk, "from": from_status, "to": to_status, **(extra or {})},
    )


def _refusal(*, current: str | None, to_status: str) -> str:
    verb = {Batch.Status.PAUSED: "paused", Batch.Status.ACTIVE: "resumed", Batch.Status.VOID: "voided"}
    return f"a batch that is {current} cannot be {verb[Batch.Status(to_status)]}"


def _column(model: type[Model], name: str) -> str:
    return next(field.column for field in model._meta.concrete_fields if field.name == name)


def _void_available_codes(*, batch_id: int, actor: str, now) -> int:
    """Move the batch's available codes to void and write one event per code; returns how many."""
    code_table = connection.ops.quote_name(Code._meta.db_table)
    event_table = connection.ops.quote_name(CodeEvent._meta.db_table)
    columns = ", ".join(
        connection.ops.quote_name(_column(CodeEvent, name))
        for name in ("batch", "code", "action", "from_state", "to_state", "actor", "details", "created_at")
    )
    details = json.dumps({"cause": "batch_void"})
    now = connection.ops.adapt_datetimefield_value(now)
    available, void = Code.State.AVAILABLE.value, Code.State.VOID.value
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"""
                WITH moved AS (
                    UPDATE {code_table} SET state = %s, state_changed_at = %s
                    WHERE batch_id = %s AND state = %s
                    RETURNING id
                )
                INSERT INTO {event_table} ({columns})
                SELECT %s, moved.id, 'voided', %s, %s, %s, %s::jsonb, %s FROM moved
                """,  # noqa: S608 (table and column names come from the models, values are parameters)
                [void, now, batch_id, available, batch_id, available, void, actor, details, now],
            )
            return cursor.rowcount
        # Elsewhere (SQLite): the INSERT ... SELECT takes the write lock, so no other
        # writer can change the batch's codes before the UPDATE that follows.
        cursor.execute(
            f"""
            INSERT INTO {event_table} ({columns})
            SELECT %s, id, 'voided', %s, %s, %s, %s, %s FROM {code_table}
            WHERE batch_id = %s AND state = %s
            """,  # noqa: S608
            [batch_id, available, void, actor, details, now, batch_id, available],
        )
        events = cursor.rowcount
        cursor.execute(
            f"UPDATE {code_table} SET state = %s, state_changed_at = %s WHERE batch_id = %s AND state = %s",  # noqa: S608
            [void, now, batch_id, available],
        )
        if cursor.rowcount != events:  # cannot happen under SQLite's single writer; refuse loudly if it does
            raise RuntimeError(_("codes changed while the batch was being voided"))
        return events
