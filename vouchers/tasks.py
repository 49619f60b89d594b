"""Background jobs: take ids, idempotent, safe to run twice (acks_late)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from vouchers.locks import HELD_STATUSES
from vouchers.models import Batch, Issuance
from vouchers.services import retention
from vouchers.services.batch_status import InvalidBatchTransition, void_batch
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
    """Kept for messages already queued under this name; purge_expired_records does it too."""
    return retention.purge_idempotency_records()


@shared_task(acks_late=True)
def purge_expired_records() -> dict[str, int]:
    """Delete records past their retention, in short batches (beat, hourly). Safe to run twice."""
    return retention.purge_expired_records()


@shared_task(acks_late=True)
def void_batch_task(batch_id: int, user_id: int | None, reason: str) -> int:
    """Void a large batch outside a web request (the admin enqueues it after commit).

    Takes ids and the staff member's reason, never a code. Idempotent: a batch that is
    already void (a second delivery, a concurrent run that won) returns 0 quietly.
    Returns how many codes in stock became void. Raises VoidReasonRequired for a blank
    reason (the admin never sends one).
    """
    from django.contrib.auth import get_user_model

    batch = Batch.objects.select_related("product").filter(pk=batch_id).first()
    if batch is None or batch.status == Batch.Status.VOID:
        return 0
    user = get_user_model().objects.filter(pk=user_id).first() if user_id is not None else None
    try:
        return void_batch(batch=batch, actor_user=user, reason=reason)
    except InvalidBatchTransition:
        if Batch.objects.filter(pk=batch_id, status=Batch.Status.VOID).exists():
            return 0  # voided by a concurrent run since we looked
        raise


@shared_task(acks_late=True)
def run_load_job(job_id: str) -> str | None:
    """Run a large import or generation started from the admin. Takes the job's id, never a code.

    Safe twice: a job already claimed by another run is left alone (returns None).
    """
    from vouchers.services.load_jobs import run_load_job as run

    job = run(job_id=job_id)
    return None if job is None else job.status


@shared_task(acks_late=True)
def fail_stalled_load_jobs() -> int:
    """Mark failed the background loads whose worker died (running, no progress for too long)."""
    from vouchers.services.load_jobs import fail_stalled_jobs

    return len(fail_stalled_jobs())
