"""Work a transaction does last, just before its COMMIT.

A request's transaction (vouchers/api/idempotent.py, `respond_once`) opens
`last_steps()` around everything it does; a service inside may then `defer` a write
that takes a contended row lock, so that the lock is held from that write to COMMIT
only, not while the rest of the request (its other statements, the response, the
idempotency completion) runs. The settlement ledger defers its append this way: one
partner's chain head is locked by every priced redemption of that partner.

Deferred work runs inside the same transaction, in the order it was deferred, when the
block ends normally; if the block raises, it is dropped (the transaction rolls back).
Work is deferred only at the block's own level: inside a savepoint opened in the block
(which may roll back alone) `defer` refuses and the caller writes at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import connection

_local = threading.local()


@contextmanager
def last_steps() -> Iterator[None]:
    """Run the work deferred inside the block at its normal end. Call inside a transaction."""
    if getattr(_local, "queue", None) is not None:
        raise RuntimeError("last_steps() is already open in this thread")
    if not connection.in_atomic_block:
        raise RuntimeError("last_steps() runs inside a transaction")
    _local.queue, _local.depth = [], len(connection.savepoint_ids)
    try:
        yield
        queue, _local.queue = _local.queue, None
        for work in queue:  # a step deferring more work while running does it at once
            work()
    finally:
        _local.queue = None


def defer(work: Callable[[], object]) -> bool:
    """Queue `work` for the end of the open `last_steps()` block.

    False when there is no such block, or a savepoint opened inside it is open (it may
    roll back alone): nothing is queued and the caller does the work now.
    """
    queue = getattr(_local, "queue", None)
    if queue is None or any(connection.savepoint_ids[_local.depth:]):
        return False
    queue.append(work)
    return True
