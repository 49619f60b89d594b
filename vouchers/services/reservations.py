"""Confirming, cancelling and expiring reservations (and reviews' held codes)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from config.callers import Caller
from config.errors import DomainError, NotFound
from partners.services import ledger
from vouchers import fastpath, locks
from vouchers.exceptions import InvalidState, ReservationExpired
from vouchers.fastpath import cancel as fast_cancel
from vouchers.fastpath import confirm as fast_confirm
from vouchers.models import Batch, Code, Issuance
from vouchers.services.issuance import move_codes
from vouchers.validity import is_expired
from vouchers.webhooks.services import outbox as webhooks


def confirm_reservation(*, caller: Caller, issuance_id) -> Issuance:
    """Turn a live reservation into an issuance; the codes become the customer's.

    A reservation found past its time, or holding codes whose batch was voided or
    whose validity ended meanwhile, is released on the spot (and that release is kept)
    before ReservationExpired is raised. Confirming an issued one returns it.
    On PostgreSQL the confirmation is one statement (vouchers/fastpath/confirm.py), which
    also answers an issued one; a reservation it did not confirm is explained by the
    portable path below (which releases one that ran out).
    Raises NotFound, ReservationExpired, InvalidState.
    """
    answered = _answered_fast(_confirm_fast, caller=caller, issuance_id=issuance_id)
    if answered is not None:
        return answered
    with transaction.atomic(savepoint=False):
        issuance = _lock_own(caller, issuance_id)
        now = timezone.now()
        if issuance.status == Issuance.Status.ISSUED:
            return issuance
        expired = issuance.status == Issuance.Status.EXPIRED or (
            issuance.status == Issuance.Status.RESERVED
            and issuance.reserved_until is not None and issuance.reserved_until <= now
        )
        if not expired and issuance.status != Issuance.Status.RESERVED:
            raise _cannot("confirmed", issuance.status)
        held = list(issuance.codes.select_related("batch").order_by("pk"))
        # Codes whose batch was voided or ran out of its window while held are not sold.
        expired = expired or any(
            code.batch.status == Batch.Status.VOID or is_expired(code, code.batch, now) for code in held
        )
        if not expired:
            _set_status(issuance, Issuance.Status.ISSUED)
            move_codes(
                codes=held, issuance=issuance,
                from_state=Code.State.RESERVED, to_state=Code.State.ISSUED,
                actor=caller.identity, now=now, action="confirmed",
            )
            # settlement: price the issued codes (partners.services.ledger)
            ledger.record_issuance(issuance=issuance, codes=held, product=issuance.product, at=now,
                                   actor=caller.identity)
            # HOOK (docs/transactions.md): the codes are issued now: after the effect,
            # inside the transaction, with issuance.pk, its product id, the code ids, `now`.
            webhooks.issuance_changed(issuance, codes=held)
            return issuance
        if issuance.status == Issuance.Status.RESERVED:
            release_held(issuance, to_status=Issuance.Status.EXPIRED, actor=caller.identity, action="expired")
    raise ReservationExpired(_("The reservation ran out (or its codes did); they are back in stock."))


def _confirm_fast(*, caller: Caller, issuance_id) -> Issuance | DomainError | None:
    """PostgreSQL: the confirmation in one statement. The issuance (confirmed now, or
    issued before), a refusal to raise (nothing was written: it keeps the transaction,
    so the idempotency record is stored in it), or None: the portable path explains."""
    with transaction.atomic(savepoint=False):
        now = timezone.now()
        found, confirmed_now = fast_confirm.confirm(
            issuance_id=issuance_id, storefront_id=caller.own_storefront_id, actor=caller.identity, now=now,
        )
        if found is None:
            return _kept(NotFound(_("No such issuance.")))
        if confirmed_now:
            # settlement: price the issued codes (partners.services.ledger)
            ledger.record_issuance(issuance=found, codes=found.claimed_codes, product=found.product,
                                   at=now, actor=caller.identity)
            # HOOK (docs/transactions.md): as on the portable path, inside the transaction.
            # A recorder that must live in the statement itself joins CONFIRM_SQL.
            webhooks.issuance_changed(found, codes=found.claimed_codes)
            return found
    # Issued, cancelled and denied are final: the status read is the answer.
    if found.status == Issuance.Status.ISSUED:
        return found
    if found.status in (Issuance.Status.CANCELLED, Issuance.Status.DENIED):
        return _kept(_cannot("confirmed", found.status))
    # Held but not confirmed (ran out, its codes did, in review, or changed just now) or
    # expired: the portable path explains, and releases what ran out.
    return None


def _answered_fast(fast, *, caller: Caller, issuance_id) -> Issuance | None:
    """The fast path's answer (PostgreSQL), or None to ask the portable path.

    A refusal it found is raised here: nothing was written, and it is raised after the
    fast path's block closed (rollback=False).
    """
    if not fastpath.enabled():
        return None
    answer = fast(caller=caller, issuance_id=issuance_id)
    if isinstance(answer, Issuance):
        return answer
    if answer is not None:
        raise answer
    return None


def _lock_own(caller: Caller, issuance_id) -> Issuance:
    """The caller's own issuance, locked; NotFound for an unknown or another storefront's one."""
    issuance = locks.lock_issuance(issuance_id=issuance_id, storefront_id=caller.own_storefront_id)
    if issuance is None:
        raise NotFound(_("No such issuance."))
    return issuance


def _cannot(done: str, status: str) -> InvalidState:
    return InvalidState(f"An issuance in status {status} cannot be {done}.")


def _kept(refusal: DomainError) -> DomainError:
    """A fast path's refusal after a statement that wrote nothing: there is nothing to roll
    back, so the refusal is stored as the key's answer in the same transaction."""
    refusal.rollback = False
    return refusal


def cancel_issuance(*, caller: Caller, issuance_id) -> Issuance:
    """Cancel a reservation; its codes return to stock. Cancelling twice returns it.

    An issuance held for fraud review can be cancelled too (the customer gave up).
    On PostgreSQL the cancellation is one statement (vouchers/fastpath/cancel.py), which
    also answers a cancelled one and refuses a final one; one it did not cancel while
    held is explained by the portable path below.
    Raises NotFound, InvalidState (issued, expired or denied).
    """
    answered = _answered_fast(_cancel_fast, caller=caller, issuance_id=issuance_id)
    if answered is not None:
        return answered
    with transaction.atomic(savepoint=False):
        issuance = _lock_own(caller, issuance_id)
        if issuance.status == Issuance.Status.CANCELLED:
            return issuance
        if issuance.status not in locks.HELD_STATUSES:
            raise _cannot("cancelled", issuance.status)
        release_held(issuance, to_status=Issuance.Status.CANCELLED, actor=caller.identity, action="cancelled")
        return issuance


def _cancel_fast(*, caller: Caller, issuance_id) -> Issuance | DomainError | None:
    """PostgreSQL: the cancellation in one statement; answers as `_confirm_fast`."""
    with transaction.atomic(savepoint=False):
        found, released = fast_cancel.cancel(
            issuance_id=issuance_id, storefront_id=caller.own_storefront_id, actor=caller.identity,
            now=timezone.now(),
        )
        if found is None:
            return _kept(NotFound(_("No such issuance.")))
        if released:  # cancelled now (an issuance holds at least one code)
            # HOOK (docs/transactions.md): after the effect, inside the transaction. A
            # recorder that must live in the statement itself joins CANCEL_SQL.
            webhooks.issuance_changed(found, codes=released)
            return found
    # Cancelled, issued, expired and denied are final: the status read is the answer.
    if found.status == Issuance.Status.CANCELLED:
        return found
    if found.status not in locks.HELD_STATUSES:
        return _kept(_cannot("cancelled", found.status))
    # Held but not cancelled (changed just now): the portable path explains.
    return None


def expire_reservation(*, issuance_id) -> bool:
    """Release one reservation or undecided review whose time has run out (beat task).

    Safe to run twice and alongside requests: one being confirmed or reviewed right now
    is skipped, one no longer held or not yet due is left alone. Returns whether it
    released anything.
    """
    with transaction.atomic():
        issuance = locks.lock_issuance_for_expiry(issuance_id=issuance_id)
        until = issuance.reserved_until if issuance is not None else None
        if issuance is None or (until is not None and until > timezone.now()):
            return False
        release_held(issuance, to_status=Issuance.Status.EXPIRED, actor="system", action="expired")
        return True


def _set_status(issuance: Issuance, status: str) -> None:
    issuance.status = status
    issuance.save(update_fields=["status", "updated_at"])


def release_held(issuance: Issuance, *, to_status: str, actor: str, action: str) -> None:
    """Return a held issuance's codes to stock and close it with `to_status`.

    A code whose batch was voided while it was held goes to void instead: it must
    not reappear as stock of a dead batch.
    """
    _set_status(issuance, to_status)
    codes = list(issuance.codes.select_related("batch").order_by("pk").select_for_update(of=("self",)))
    now = timezone.now()
    for to_state, group in (
        (Code.State.AVAILABLE, [c for c in codes if c.batch.status != Batch.Status.VOID]),
        (Code.State.VOID, [c for c in codes if c.batch.status == Batch.Status.VOID]),
    ):
        if group:
            move_codes(
                codes=group, issuance=issuance, from_state=Code.State.RESERVED, to_state=to_state,
                actor=actor, now=now, action=action,
            )
    webhooks.issuance_changed(issuance, codes=codes)
