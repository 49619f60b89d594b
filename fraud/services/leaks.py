"""Leak signals: someone used a code that no customer can have received.

A never-issued code (still in stock or only reserved) and a canary code are both
answered as an unknown code, so the user learns nothing; here they are recorded as
a possible (high) or certain (critical) leak of the batch's stock, the merchant's
staff are alerted (at most one mail per batch and kind every
FRAUD_ALERT_THROTTLE_SECONDS; every use is an event), and the attempt counts as a
failed attempt for lockouts. Do not call `record_failed_attempt` as well.

Indistinguishable in time from an unknown code: inside the request a leak does what
an unknown code does (count one failed attempt in the counter store) and no more.
Writing the event, the alert throttle and the alert are one Celery task
(`fraud.tasks.record_leak_use`, ids and the request's context only, never a code). The
code's facts (id, last 4 characters, state) come from the caller with the attempt
(`fraud.context.CodeFacts`) and travel in that context: fraud never reads the code.
Even publishing the task costs a few milliseconds of the request's time, so after
commit the request only hands it to this process's leak-report thread, which publishes
it; if the broker cannot take it, that thread writes the event itself
(losing a leak signal would be worse). A process killed in the few milliseconds
between the hand-off and the publish loses that one event (never the failed-attempt
count, which is taken in the request). The task is safe twice: it carries an attempt
id and writes no second event for it. With tasks run eagerly (the embedded default,
tests) everything runs in the request after commit.

If the counter store is down the event is still written and the use is still refused
(the caller answers unknown_code); only the lockout count is lost, and the next
attempt meets `ensure_not_locked_out` failing closed.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid

from django.db import transaction

from config import metrics
from fraud import clock
from fraud.context import CodeFacts, RiskContext
from fraud.exceptions import RiskCheckUnavailable
from fraud.models import FraudEvent
from fraud.services.events import record_fraud_event
from fraud.services.lockouts import record_failed_attempt

logger = logging.getLogger("fraud.leaks")

SEVERITY_BY_KIND = {
    FraudEvent.Kind.UNISSUED_CODE_USE: FraudEvent.Severity.HIGH,
    FraudEvent.Kind.CANARY_USE: FraudEvent.Severity.CRITICAL,
}


def report_unissued_code_use(*, ctx: RiskContext, code: CodeFacts) -> None:
    """A code that exists but was never issued was checked or redeemed: possible leak.

    Counts a failed attempt now; a high-severity event naming the batch (and its alert)
    is written after commit, off the request. Raises nothing of its own.
    """
    _count_failure(ctx, "not_issued")
    _record_after_commit(FraudEvent.Kind.UNISSUED_CODE_USE, ctx, code)


def report_canary_use(*, ctx: RiskContext, code: CodeFacts) -> None:
    """A canary code was checked or redeemed: the batch's stock has leaked.

    Counts a failed attempt now; a critical event naming the batch (and its alert) is
    written after commit, off the request. Raises nothing of its own.
    """
    _count_failure(ctx, "canary")
    _record_after_commit(FraudEvent.Kind.CANARY_USE, ctx, code)


def record_leak_event(*, kind: str, context: dict, code_id: int, batch_id: int,
                      occurred_at: float | None = None) -> FraudEvent | None:
    """Write the leak event of one attempt (the task's body); None if it was written already.

    `context` holds the request's context and the code's facts (`CodeFacts.as_json`).
    """
    attempt = context.get("attempt")
    with transaction.atomic():
        seen = FraudEvent.objects.filter(batch_id=batch_id, kind=kind, context__attempt=attempt)
        if attempt and seen.exists():
            return None
        metrics.LEAK_SIGNALS.labels(kind=kind).inc()
        return record_fraud_event(
            merchant_id=context.get("merchant_id"), kind=kind,
            severity=SEVERITY_BY_KIND[FraudEvent.Kind(kind)],
            decision=FraudEvent.Decision.REFUSED,
            context={**context, "code_id": code_id, "batch_id": batch_id},
            batch_id=batch_id, alert_throttle=f"batch:{batch_id}", occurred_at=occurred_at,
        )


def _record_after_commit(kind: str, ctx: RiskContext, code: CodeFacts) -> None:
    context = {**ctx.as_json(), "attempt": uuid.uuid4().hex, **code.as_json()}
    occurred_at = clock.now()
    fields = {"kind": str(kind), "context": context, "code_id": code.code_id, "batch_id": code.batch_id,
              "occurred_at": occurred_at}

    def record_leak_use_after_commit() -> None:
        from config.celery import app

        if app.conf.task_always_eager:
            _publish_or_record(fields)
        else:
            _handoff().put(fields)

    transaction.on_commit(record_leak_use_after_commit, robust=True)


def _publish_or_record(fields: dict) -> None:
    from fraud.tasks import record_leak_use

    try:
        record_leak_use.delay(**fields)
    except Exception:  # the broker is unreachable: a leak signal must not be lost
        logger.warning("broker unavailable; writing the leak event of batch %s here", fields["batch_id"])
        record_leak_event(**fields)


HANDOFF_DELAY_SECONDS = 0.05
_HANDOFF: tuple[int, queue.SimpleQueue] | None = None
_HANDOFF_LOCK = threading.Lock()


def _handoff() -> queue.SimpleQueue:
    """This process's queue of leak reports, drained by one daemon thread (started after a fork)."""
    global _HANDOFF
    pid = os.getpid()
    if _HANDOFF is None or _HANDOFF[0] != pid:
        with _HANDOFF_LOCK:
            if _HANDOFF is None or _HANDOFF[0] != pid:
                jobs: queue.SimpleQueue = queue.SimpleQueue()
                threading.Thread(target=_drain, args=(jobs,), name="leak-reports", daemon=True).start()
                _HANDOFF = (pid, jobs)
    return _HANDOFF[1]


def _drain(jobs: queue.SimpleQueue) -> None:
    """Publish (or, failing that, write) each queued report; never dies on an error."""
    from django.db import connection

    while True:
        fields = jobs.get()
        # Let the request that queued it finish its answer first: publishing takes the GIL
        # for a millisecond or more, which would otherwise land in that request's time.
        time.sleep(HANDOFF_DELAY_SECONDS)
        try:
            _publish_or_record(fields)
        except Exception:
            logger.exception("leak event of batch %s lost", fields.get("batch_id"))
        if jobs.empty():
            try:
                connection.close()  # only the fallback opens one; do not hold it idle
            except Exception:
                logger.exception("closing the leak-report thread's database connection failed")


def _count_failure(ctx: RiskContext, reason: str) -> None:
    try:
        record_failed_attempt(ctx=ctx, reason=reason)
    except RiskCheckUnavailable:
        logger.error("leak event recorded but its failed attempt was not counted: counter store down")
