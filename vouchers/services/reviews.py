"""The fraud review queue: a reviewer approves or denies an issuance held for review."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from config.errors import NotFound
from partners.services import ledger
from vouchers import locks
from vouchers.audit.services import record_audit
from vouchers.exceptions import InvalidState, ReservationExpired
from vouchers.models import Batch, Code, Issuance, Storefront
from vouchers.services.events import actor_for_user
from vouchers.services.issuance import move_codes
from vouchers.services.reservations import release_held
from vouchers.webhooks.services import outbox as webhooks


def approve_review(*, issuance_id, reviewer, merchant_id: int | None) -> Issuance:
    """Issue the held codes: the storefront then gets them by GET.

    `merchant_id` scopes the reviewer to their merchant (None for a superuser). A review
    found past its time is released (and that is kept) before ReservationExpired. A
    review holding codes of a batch voided meanwhile cannot be approved (the customer
    would get dead codes): deny it.
    Raises NotFound, InvalidState, ReservationExpired.
    """
    with transaction.atomic():
        issuance = _held_for_review(issuance_id, merchant_id)
        now = timezone.now()
        if issuance.codes.filter(batch__status=Batch.Status.VOID).exists():
            raise InvalidState(_("Some held codes belong to a voided batch; deny this issuance instead."))
        if issuance.reserved_until is None or issuance.reserved_until > now:
            issuance.status = Issuance.Status.ISSUED
            issuance.save(update_fields=["status", "updated_at"])
            codes = list(issuance.codes.order_by("pk"))
            move_codes(
                codes=codes, issuance=issuance,
                from_state=Code.State.RESERVED, to_state=Code.State.ISSUED,
                actor=actor_for_user(reviewer), now=now, action="review_approved",
            )
            _audit(issuance=issuance, action="review_approved", reviewer=reviewer)
            # settlement: price the issued codes (partners.services.ledger)
            ledger.record_issuance(issuance=issuance, codes=codes, product=issuance.product, at=now,
                                   actor=actor_for_user(reviewer))
            webhooks.issuance_changed(issuance, codes=codes, event_type="issuance.review_approved")
            return issuance
        release_held(issuance, to_status=Issuance.Status.EXPIRED, actor="system", action="expired")
    raise ReservationExpired(_("The review waited too long; its codes went back to stock."))


@transaction.atomic
def deny_review(*, issuance_id, reviewer, merchant_id: int | None, reason: str = "") -> Issuance:
    """Refuse a held issuance: status `denied`, codes back to stock. Raises NotFound, InvalidState."""
    issuance = _held_for_review(issuance_id, merchant_id)
    release_held(
        issuance, to_status=Issuance.Status.DENIED, actor=actor_for_user(reviewer),
        action="review_denied",
    )
    if reason:
        from vouchers.services.events import record_event

        record_event(action="review_reason", actor=actor_for_user(reviewer), issuance_id=issuance.pk,
                     details={"reason": reason[:500]})
    _audit(issuance=issuance, action="review_denied", reviewer=reviewer, reason=reason)
    return issuance


def _audit(*, issuance: Issuance, action: str, reviewer, reason: str = "") -> None:
    merchant_id = Storefront.objects.filter(pk=issuance.storefront_id).values_list(
        "merchant_id", flat=True).get()
    record_audit(
        action=action, merchant_id=merchant_id, user=reviewer, target=issuance,
        target_label=f"Issuance {issuance.pk}", reason=reason,
        details={"issuance_id": str(issuance.pk), "quantity": issuance.quantity,
                 "product_id": issuance.product_id},
    )


def _held_for_review(issuance_id, merchant_id: int | None) -> Issuance:
    issuance = locks.lock_issuance_for_review(issuance_id=issuance_id, merchant_id=merchant_id)
    if issuance is None:
        raise NotFound(_("No such issuance."))
    if issuance.status != Issuance.Status.REVIEW:
        raise InvalidState(f"Only an issuance in review can be decided; this one is {issuance.status}.")
    return issuance
