"""What the redemption and reversal fast paths share: one code moved between issued
and redeemed, counted and recorded in the same statement.

Both statements have a `code` CTE returning the moved code's id, batch_id and
issuance_id; these are their `counters` and `event` CTEs.
"""

from __future__ import annotations

from vouchers.models import CodeEvent, StockCounter


def counters_cte(*, from_state: str, to_state: str) -> str:
    # states are the model's constants, never request values
    return f"""counters AS (
    -- Invariant 2 (counts by state add up): one shard of the batch, {from_state} -1 and
    -- {to_state} +1 in one UPDATE (rows in (batch, state, shard) index order, as every writer).
    UPDATE {StockCounter._meta.db_table} AS s
       SET count = s.count + CASE s.state WHEN '{from_state}' THEN -1 ELSE 1 END
      FROM code
     WHERE s.batch_id = code.batch_id AND s.shard = %(shard)s AND s.state IN ('{from_state}', '{to_state}')
    RETURNING s.id
)"""  # noqa: S608


def event_cte(*, action: str, from_state: str, to_state: str) -> str:
    return f"""event AS (
    -- Invariant 4: the state change's append-only event, in the same transaction.
    INSERT INTO {CodeEvent._meta.db_table}
           (batch_id, code_id, issuance_id, action, from_state, to_state, actor, details, created_at)
    SELECT code.batch_id, code.id, code.issuance_id, '{action}', '{from_state}', '{to_state}', %(actor)s,
           %(details)s::jsonb, %(now)s
      FROM code
    RETURNING id
)"""  # noqa: S608
