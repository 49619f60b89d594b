"""Extend a batch's validity: unsold and unredeemed codes stay usable longer instead of going to waste."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils.translation import gettext as _

from config.errors import DomainError
from vouchers.models import Batch
from vouchers.services.events import actor_for_user, record_event

MAX_REASON_LENGTH = 500


class ValidityNotExtended(DomainError):
    """409 `validity_not_extended`: the batch's validity was not extended."""


@transaction.atomic
def extend_validity(*, batch: Batch, valid_until: datetime, reason: str, actor_user) -> datetime | None:
    """Move the batch's end of validity later; one event records who, why, from and to.

    The UPDATE names the end just read, so two concurrent extensions cannot both apply
    on the same starting point. Returns the previous end (None: the batch had no end).

    Raises ValidityNotExtended: blank reason, a void batch, a batch without an end
    (nothing to extend), or a new end not later than the current one.
    """
    reason = (reason or "").strip()[:MAX_REASON_LENGTH]
    if not reason:
        raise ValidityNotExtended(_("a reason is required"))
    row = Batch.objects.filter(pk=batch.pk).values("status", "valid_until").first()
    if row is None or row["status"] == Batch.Status.VOID:
        raise ValidityNotExtended(_("batch %(batch)s is void") % {"batch": batch.pk})
    previous = row["valid_until"]
    if previous is None:
        raise ValidityNotExtended(_("batch %(batch)s has no end of validity to extend") % {"batch": batch.pk})
    if valid_until <= previous:
        raise ValidityNotExtended(_("batch %(batch)s is already valid until %(until)s UTC") % {
            "batch": batch.pk, "until": f"{previous:%Y-%m-%d %H:%M}"})
    updated = Batch.objects.filter(pk=batch.pk, valid_until=previous).exclude(
        status=Batch.Status.VOID
    ).update(valid_until=valid_until)
    if updated != 1:
        raise ValidityNotExtended(_("batch %(batch)s changed meanwhile; try again") % {"batch": batch.pk})
    record_event(
        action="batch_validity_extended", actor=actor_for_user(actor_user), batch_id=batch.pk,
        details={"reason": reason, "from": previous.isoformat(), "to": valid_until.isoformat()},
    )
    batch.valid_until = valid_until
    return previous
