"""Background jobs: take ids, idempotent, safe to run twice (acks_late)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from vouchers.locks import HELD_STATUSES
from vouchers.models import Issuance
from vouchers.services import idempotency
from vouchers.services.reservations import expire_reservation

RELEASE_CHUNK = 500


@shared_task(acks_late=True)
def release_expired_reservations() -> int:
    """Release every reservation and undecided review past its time.

    Requests release a reservation lazily too, when they touch it.
    """
    due = list(
        Issuance.objects.filter(status__in=HELD_STATUSES, reserved_until__lte=timezone.now())
        .order_by("reserved_until").values_list("pk", flat=True)[:RELEASE_CHUNK]
    )
    released = sum(expire_reservation(issuance_id=pk) for pk in due)
    if len(due) == RELEASE_CHUNK:
        release_expired_reservations.delay()
    return released


@shared_task(acks_late=True)
def purge_idempotency_records() -> int:
    return idempotency.purge_expired()
