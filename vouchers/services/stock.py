"""Stock counters: per batch and state, split into shards so claims do not queue.

Every code state change moves a count between two states of one batch. The move is
applied to one randomly chosen shard of each state, so two concurrent claims on the
same batch contend only when they pick the same shard (1 in VOUCHER_STOCK_SHARDS).
Counts within one shard may go negative; the sum over shards is the stock.
See docs/stock.md.
"""

from __future__ import annotations

import random
from collections import Counter

from django.conf import settings
from django.db.models import F

from vouchers.models import Code, StockCounter


def shard_count() -> int:
    return settings.VOUCHER_STOCK_SHARDS


def create_counters(*, batch_id: int, available: int) -> None:
    """Create every shard of a new batch, the whole initial stock in shard 0."""
    StockCounter.objects.bulk_create(
        [
            StockCounter(
                batch_id=batch_id, state=state, shard=shard,
                count=available if (state == Code.State.AVAILABLE and shard == 0) else 0,
            )
            for state in Code.State.values
            for shard in range(shard_count())
        ]
    )


def record_moves(moves: Counter[tuple[int, str, str]]) -> None:
    """Apply counts moved as {(batch_id, from_state, to_state): n}.

    Rows are updated in (batch, state) order, the same in every transaction, so two
    transactions can never wait on each other in a cycle.
    """
    deltas: Counter[tuple[int, str]] = Counter()
    for (batch_id, from_state, to_state), n in moves.items():
        deltas[(batch_id, from_state)] -= n
        deltas[(batch_id, to_state)] += n
    shard = random.randrange(shard_count())
    for (batch_id, state), delta in sorted(deltas.items()):
        if delta:
            StockCounter.objects.filter(batch_id=batch_id, state=state, shard=shard).update(
                count=F("count") + delta
            )


def record_move(*, batch_id: int, from_state: str, to_state: str, count: int = 1) -> None:
    record_moves(Counter({(batch_id, from_state, to_state): count}))
