"""One transaction per idempotent request: claim the key, run the effect, store the answer.

See docs/transactions.md. The transaction opened here is the request's only one
(durable): the idempotency claim is its first statement, the service's work joins it
(services open `transaction.atomic(savepoint=False)`, which here adds nothing), and
the completed record is written before it commits. So either the effect and its
record commit together, or neither exists. A write a service deferred to the end
(config/precommit.py: the settlement ledger's append, which locks a partner's chain
head) runs after the completion, as the transaction's last statement before COMMIT.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.utils.translation import gettext_lazy as _
from rest_framework.response import Response

from config import precommit
from config.errors import DomainError
from vouchers.api.errors import (
    PROBLEM,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    problem_response,
)
from vouchers.services import idempotency

# Refusals that pass with time (rate limits, lockouts, a store that is down): never
# stored as a key's answer, so a retry with the same key runs again.
TRANSIENT_STATUSES = frozenset({429, 503})


def respond_once(*, caller: str, key: str, fingerprint: str, perform: Callable[[], Response]) -> Response:
    """The response to (caller, key): the first one stored, or `perform()`'s, stored.

    `perform` validates and calls one service. A DomainError that keeps its work
    (rollback=False) becomes this key's stored answer in the same transaction; one
    that rolls back is stored afterwards in a transaction of its own (nothing
    happened, so nothing is lost if that one fails), unless it is transient.
    Raises IdempotencyInProgress, IdempotencyKeyReused, and whatever `perform` raises
    that is not a DomainError (the transaction rolls back, the key stays free).
    """
    try:
        with transaction.atomic(durable=True), precommit.last_steps():
            claim = idempotency.claim(caller=caller, key=key, fingerprint=fingerprint)
            if claim.outcome != "run":
                return _answer_claimed(claim)
            try:
                response = perform()
            except DomainError as exc:
                if exc.rollback:
                    raise
                response = problem_response(exc)  # the service kept its work on purpose
            idempotency.complete(claim.run_record_id, status=response.status_code, body=response.data)
            # the steps the service deferred (a ledger append) run here, just before COMMIT
            return response
    except DomainError as exc:
        if not exc.rollback or exc.status in TRANSIENT_STATUSES or isinstance(exc, _CLAIM_ERRORS):
            raise
        return _store_refusal(caller=caller, key=key, fingerprint=fingerprint, exc=exc)


def _store_refusal(*, caller: str, key: str, fingerprint: str, exc: DomainError) -> Response:
    """A lasting refusal whose transaction rolled back becomes the key's answer."""
    response = problem_response(exc)
    with transaction.atomic(durable=True):
        claim = idempotency.claim(caller=caller, key=key, fingerprint=fingerprint)
        if claim.outcome == "run":
            idempotency.complete(claim.run_record_id, status=response.status_code, body=response.data)
            return response
    if claim.outcome == "replay":  # a duplicate ran meanwhile and its answer was stored first
        return replay(claim.record)
    return response  # a duplicate holds the key now; this answer is not stored


def _answer_claimed(claim: idempotency.Claim) -> Response:
    if claim.outcome == "mismatch":
        raise IdempotencyKeyReused(_("This Idempotency-Key was used with a different request."))
    if claim.outcome == "replay":
        return replay(claim.record)
    raise IdempotencyInProgress(_("The first request with this key is still running; retry later."))


_CLAIM_ERRORS = (IdempotencyKeyReused, IdempotencyInProgress)


def replay(record) -> Response:
    """The stored first response, codes decrypted again, marked as a replay."""
    body = idempotency.restore_codes(record.response_body)
    response = Response(
        body, status=record.response_status,
        content_type=PROBLEM if record.response_status >= 400 else None,
    )
    response["Idempotent-Replayed"] = "true"
    return response
