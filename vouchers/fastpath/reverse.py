"""Reverse one redemption: one statement on PostgreSQL (see vouchers/fastpath/__init__.py)."""

from __future__ import annotations

import json
import random
from datetime import datetime
from functools import cache

from django.conf import settings
from django.db import connection

from vouchers import fastpath
from vouchers.fastpath import code_move
from vouchers.fastpath import cursor as fastpath_cursor
from vouchers.models import Batch, Code, Merchant, Product, Redemption

# Table names come from the models; every value is a parameter.
REVERSE_SQL = f"""
WITH target AS (
    -- The caller's own live redemption (its storefront, or its partner), inside the
    -- merchant's reversal window, locked: a concurrent reversal waits, then finds the
    -- row reversed (the WHERE is checked again on the new row version) and writes nothing.
    SELECT r.id, r.code_id
      FROM {Redemption._meta.db_table} AS r
      JOIN {Code._meta.db_table} AS c ON c.id = r.code_id
      JOIN {Batch._meta.db_table} AS b ON b.id = c.batch_id
      JOIN {Product._meta.db_table} AS p ON p.id = b.product_id
      JOIN {Merchant._meta.db_table} AS m ON m.id = p.merchant_id
     WHERE r.id = %(redemption_id)s
       AND r.storefront_id IS NOT DISTINCT FROM %(storefront_id)s
       AND r.partner_id IS NOT DISTINCT FROM %(partner_id)s
       AND r.reversed_at IS NULL
       AND r.redeemed_at + make_interval(days => m.reversal_window_days) >= %(now)s
       FOR UPDATE OF r
), code AS (
    -- Invariant 1: the code of a live redemption is redeemed; it is issued again (the
    -- state named in the WHERE: a code in any other state writes nothing).
    UPDATE {Code._meta.db_table} AS c
       SET state = 'issued', redeemed_at = NULL, state_changed_at = %(now)s
      FROM target
     WHERE c.id = target.code_id AND c.state = 'redeemed'
    RETURNING c.id, c.batch_id, c.issuance_id
), reversed AS (
    -- The redemption is reversed only together with its code (at most one live
    -- redemption per code: the code is free for the next one).
    UPDATE {Redemption._meta.db_table} AS r
       SET reversed_at = %(now)s, reversal_reason = %(reason)s
      FROM target, code
     WHERE r.id = target.id
    RETURNING r.id, r.code_id, r.storefront_id, r.partner_id, r.order_ref, r.location, r.redeemed_at
), {code_move.counters_cte(from_state="redeemed", to_state="issued")}
, {code_move.event_cte(action="redemption_reversed", from_state="redeemed", to_state="issued")}
SELECT reversed.id, reversed.code_id, reversed.storefront_id, reversed.partner_id, reversed.order_ref,
       reversed.location, reversed.redeemed_at, (SELECT count(*) FROM counters), (SELECT count(*) FROM event)
  FROM reversed
"""  # noqa: S608


@cache
def _sql() -> str:
    return fastpath.compact(REVERSE_SQL)


def reverse(
    *, redemption_id, storefront_id: int | None, partner_id: int | None, reason: str, actor: str,
    now: datetime,
) -> Redemption | None:
    """The reversed redemption, or None if this caller cannot reverse it now (nothing written).

    Must run inside the request's transaction. Raises RuntimeError if a row that the
    reversal implies is missing (the transaction then rolls back).
    """
    params = {
        "redemption_id": redemption_id, "storefront_id": storefront_id, "partner_id": partner_id,
        "now": now, "reason": reason, "shard": random.randrange(settings.VOUCHER_STOCK_SHARDS),
        "actor": actor, "details": json.dumps({"redemption": str(redemption_id), "reason": reason[:200]}),
    }
    with fastpath_cursor() as cursor:
        cursor.execute(_sql(), params)
        row = cursor.fetchone()
    if row is None:
        return None
    pk, code_id, storefront, partner, order_ref, location, redeemed_at, counted, evented = row
    if (counted, evented) != (2, 1):
        raise RuntimeError(f"reversal of redemption {pk}: counters {counted}, events {evented}")
    redemption = Redemption(
        id=pk, code_id=code_id, storefront_id=storefront, partner_id=partner, order_ref=order_ref,
        location=location, redeemed_at=redeemed_at, reversed_at=now, reversal_reason=reason,
    )
    redemption._state.adding, redemption._state.db = False, connection.alias
    return redemption
