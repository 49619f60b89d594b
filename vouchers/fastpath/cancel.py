"""Cancel one held issuance: one statement on PostgreSQL (see vouchers/fastpath/__init__.py)."""

from __future__ import annotations

from datetime import datetime
from functools import cache

from django.db import connection

from vouchers import fastpath
from vouchers.fastpath import held
from vouchers.locks import HELD_STATUSES
from vouchers.models import Batch, Code, CodeEvent, Issuance, Product, StockCounter

_ISSUANCE, _CODE, _BATCH = Issuance._meta.db_table, Code._meta.db_table, Batch._meta.db_table
_ISSUANCE_ROWS, _PRODUCT_ROWS = held.ISSUANCE_ROWS, held.PRODUCT_ROWS
_HELD = ", ".join(f"'{status.value}'" for status in HELD_STATUSES)  # constants from the model

# Table names and statuses come from the models; every value is a parameter.
CANCEL_SQL = f"""
WITH cancelled AS (
    -- The caller's own held issuance (reserved, or in fraud review) is cancelled only
    -- while it is held: the WHERE is the check. A concurrent confirm, cancel, expiry or
    -- review decision holds the row; this one waits, then finds it no longer held (the
    -- WHERE is checked again on the new row version) and writes nothing.
    UPDATE {_ISSUANCE} AS i
       SET status = 'cancelled', updated_at = %(now)s
     WHERE i.id = %(issuance_id)s AND i.storefront_id = %(storefront_id)s AND i.status IN ({_HELD})
    RETURNING i.*
), moved AS (
    -- Invariant 1 and 5: every code the issuance held goes back to stock and leaves it
    -- (a closed issuance holds none; the caller compares the count with the quantity);
    -- a code whose batch was voided while held goes to void instead, never back to stock
    -- of a dead batch, and stays linked to the issuance, as on the portable path.
    UPDATE {_CODE} AS c
       SET state = CASE WHEN b.status = 'void' THEN 'void' ELSE 'available' END,
           issuance_id = CASE WHEN b.status = 'void' THEN c.issuance_id END,
           state_changed_at = %(now)s
      FROM cancelled, {_BATCH} AS b
     WHERE c.issuance_id = cancelled.id AND c.state = 'reserved' AND b.id = c.batch_id
    RETURNING c.id, c.batch_id, c.state, c.last4
), deltas AS (
    SELECT batch_id, state, count(*) AS delta FROM moved GROUP BY batch_id, state
    UNION ALL
    SELECT batch_id, 'reserved', -count(*) FROM moved GROUP BY batch_id
), counters AS (
    -- Invariant 2 (counts by state add up): one shard per batch, reserved -n and the
    -- target state +n in one UPDATE, rows in (batch, state) order as every other writer.
    UPDATE {StockCounter._meta.db_table} AS s
       SET count = s.count + d.delta
      FROM (SELECT * FROM deltas ORDER BY batch_id, state) AS d
     WHERE s.batch_id = d.batch_id AND s.state = d.state AND s.shard = %(shard)s
    RETURNING s.id
), events AS (
    -- Invariant 4: one append-only event per code, and one for the issuance per target
    -- state (back to stock, then void), in that order, as the portable path writes them.
    INSERT INTO {CodeEvent._meta.db_table}
           (batch_id, code_id, issuance_id, action, from_state, to_state, actor, details, created_at)
    SELECT batch_id, code_id, issuance_id, action, from_state, to_state, %(actor)s, details, %(now)s
      FROM (
        SELECT moved.state = 'void' AS void, 0 AS kind, moved.batch_id, moved.id AS code_id,
               cancelled.id AS issuance_id, 'cancelled' AS action, 'reserved' AS from_state,
               moved.state AS to_state, '{{}}'::jsonb AS details
          FROM moved, cancelled
        UNION ALL
        SELECT moved.state = 'void', 1, NULL, NULL, cancelled.id, 'issuance_cancelled', '', 'cancelled',
               jsonb_build_object('quantity', count(*))
          FROM moved, cancelled GROUP BY moved.state, cancelled.id
      ) AS e
     ORDER BY void, kind, code_id
    RETURNING id
), current AS (
    -- Not cancelled now: the issuance as it was (a cancelled one is answered as it is).
    SELECT * FROM {_ISSUANCE}
     WHERE id = %(issuance_id)s AND storefront_id = %(storefront_id)s AND NOT EXISTS (SELECT FROM cancelled)
)
SELECT (SELECT count(*) FROM cancelled), (SELECT count(*) FROM counters), (SELECT count(*) FROM events),
       {_ISSUANCE_ROWS.select}, {_PRODUCT_ROWS.select}, m.id, m.batch_id, m.state, m.last4
  FROM (SELECT * FROM cancelled UNION ALL SELECT * FROM current) AS i
  JOIN {Product._meta.db_table} AS p ON p.id = i.product_id
  LEFT JOIN moved AS m ON true
 ORDER BY m.id
"""  # noqa: S608


@cache
def _sql() -> str:
    return fastpath.compact(CANCEL_SQL)


def cancel(
    *, issuance_id, storefront_id: int, actor: str, now: datetime
) -> tuple[Issuance | None, list[Code]]:
    """(the issuance, the codes it released now); (None, []) if the caller has no such
    issuance. Not cancelled now (no codes back), the issuance is as it was, nothing
    written, and the service answers from its status.

    Must run inside the request's transaction. Raises RuntimeError if a row the
    cancellation implies is missing (the transaction then rolls back).
    """
    rows, issuance = held.run(
        _sql(), counts=3, issuance_id=issuance_id, storefront_id=storefront_id, actor=actor, now=now
    )
    if issuance is None:
        return None, []
    cancelled, counted, evented = rows[0][:3]
    if not cancelled:
        return issuance, []
    codes = []
    for *_, code_id, batch_id, state, last4 in rows:
        if code_id is not None:
            code = Code(id=code_id, batch_id=batch_id, state=state, last4=last4, state_changed_at=now,
                        issuance_id=issuance.pk if state == Code.State.VOID else None)
            code._state.adding, code._state.db = False, connection.alias
            codes.append(code)
    pairs = {(code.batch_id, code.state) for code in codes}
    targets = {code.state for code in codes}
    expected = (issuance.quantity, len(pairs) + len({b for b, _ in pairs}), issuance.quantity + len(targets))
    if (len(codes), counted, evented) != expected:
        raise RuntimeError(
            f"cancellation of {issuance.pk}: moved {len(codes)} of {issuance.quantity}, "
            f"counters {counted}, events {evented}"
        )
    return issuance, codes
