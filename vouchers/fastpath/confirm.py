"""Confirm one reservation: one statement on PostgreSQL (see vouchers/fastpath/__init__.py)."""

from __future__ import annotations

from datetime import datetime
from functools import cache

from django.db import connection

from vouchers import fastpath
from vouchers.fastpath import held
from vouchers.models import Batch, Code, CodeEvent, Issuance, Product, StockCounter

_ISSUANCE, _CODE, _BATCH = Issuance._meta.db_table, Code._meta.db_table, Batch._meta.db_table
_ISSUANCE_ROWS, _PRODUCT_ROWS = held.ISSUANCE_ROWS, held.PRODUCT_ROWS
# The code columns the response (decrypted again from the ciphertext), the ledger and
# the webhook need, in this order.
_CODE_FIELDS = ("id", "batch_id", "ciphertext", "nonce", "key_id", "blind_index", "serial", "expires_at",
                "last4", "state")


def _columns(alias: str) -> str:
    return ", ".join(f"{alias}.{name}" for name in _CODE_FIELDS)


# Table names come from the models; every value is a parameter.
CONFIRM_SQL = f"""
WITH confirmed AS (
    -- Invariant 1 (a code is sold at most once) and 5 (all or nothing): the caller's
    -- own reservation moves to issued only while it is reserved and its time has not
    -- run out, and only if none of its codes' batches was voided or ran out of its
    -- window, nor any code out of its own expiry, meanwhile (such a reservation is
    -- released by the explaining path, never sold). The WHERE is the check: a concurrent
    -- confirm, cancel or expiry holds the row; this one waits, then finds it no longer
    -- reserved (the WHERE is checked again on the new row version) and writes nothing.
    UPDATE {_ISSUANCE} AS i
       SET status = 'issued', updated_at = %(now)s
     WHERE i.id = %(issuance_id)s AND i.storefront_id = %(storefront_id)s AND i.status = 'reserved'
       AND (i.reserved_until IS NULL OR i.reserved_until > %(now)s)
       AND NOT EXISTS (
           SELECT 1 FROM {_CODE} AS c JOIN {_BATCH} AS b ON b.id = c.batch_id
            WHERE c.issuance_id = i.id
              AND (b.status = 'void' OR b.valid_until <= %(now)s OR c.expires_at <= %(now)s))
    RETURNING i.*
), moved AS (
    -- Invariant 5: the reservation's codes, all of them, become the customer's (the
    -- state named in the WHERE; the caller compares the count with the quantity).
    UPDATE {_CODE} AS c
       SET state = 'issued', state_changed_at = %(now)s
      FROM confirmed
     WHERE c.issuance_id = confirmed.id AND c.state = 'reserved'
    RETURNING {_columns("c")}
), deltas AS (
    SELECT batch_id, 'issued' AS state, count(*) AS delta FROM moved GROUP BY batch_id
    UNION ALL
    SELECT batch_id, 'reserved', -count(*) FROM moved GROUP BY batch_id
), counters AS (
    -- Invariant 2 (counts by state add up): one shard per batch, reserved -n and issued
    -- +n in one UPDATE, rows in (batch, state) order as every other writer.
    UPDATE {StockCounter._meta.db_table} AS s
       SET count = s.count + d.delta
      FROM (SELECT * FROM deltas ORDER BY batch_id, state) AS d
     WHERE s.batch_id = d.batch_id AND s.state = d.state AND s.shard = %(shard)s
    RETURNING s.id
), events AS (
    -- Invariant 4: one append-only event per code and one for the issuance.
    INSERT INTO {CodeEvent._meta.db_table}
           (batch_id, code_id, issuance_id, action, from_state, to_state, actor, details, created_at)
    SELECT moved.batch_id, moved.id, confirmed.id, 'confirmed', 'reserved', 'issued', %(actor)s,
           '{{}}'::jsonb, %(now)s
      FROM moved, confirmed
    UNION ALL
    SELECT NULL, NULL, confirmed.id, 'issuance_confirmed', '', 'issued', %(actor)s,
           jsonb_build_object('quantity', (SELECT count(*) FROM moved)), %(now)s
      FROM confirmed
    RETURNING id
), current AS (
    -- Not confirmed now: the issuance as it was (an issued one is answered with its codes).
    SELECT * FROM {_ISSUANCE}
     WHERE id = %(issuance_id)s AND storefront_id = %(storefront_id)s AND NOT EXISTS (SELECT FROM confirmed)
), codes AS (
    SELECT * FROM moved
    UNION ALL
    SELECT {_columns("c")}
      FROM {_CODE} AS c JOIN current ON c.issuance_id = current.id
     WHERE current.status = 'issued'
)
SELECT (SELECT count(*) FROM confirmed), (SELECT count(*) FROM moved), (SELECT count(*) FROM counters),
       (SELECT count(*) FROM events), {_ISSUANCE_ROWS.select}, {_PRODUCT_ROWS.select},
       {_columns("m")}, b.valid_until
  FROM (SELECT * FROM confirmed UNION ALL SELECT * FROM current) AS i
  JOIN {Product._meta.db_table} AS p ON p.id = i.product_id
  LEFT JOIN codes AS m ON true
  LEFT JOIN {_BATCH} AS b ON b.id = m.batch_id
 ORDER BY m.id
"""  # noqa: S608


@cache
def _sql() -> str:
    return fastpath.compact(CONFIRM_SQL)


def confirm(*, issuance_id, storefront_id: int, actor: str, now: datetime) -> tuple[Issuance | None, bool]:
    """(the issuance, whether it was confirmed now); (None, False) if the caller has no such
    issuance. Not confirmed now, the issuance is as it was, nothing written: an issued
    one holds its codes in `claimed_codes` for the answer; for any other the service
    explains the refusal (and releases a reservation that ran out).

    Must run inside the request's transaction. Raises RuntimeError if a row the
    confirmation implies is missing (the transaction then rolls back).
    """
    rows, issuance = held.run(
        _sql(), counts=4, issuance_id=issuance_id, storefront_id=storefront_id, actor=actor, now=now
    )
    if issuance is None:
        return None, False
    confirmed, moved, counted, evented = rows[0][:4]
    if issuance.status != Issuance.Status.ISSUED:
        return issuance, False
    batches = len({row[-10] for row in rows if row[-11] is not None})  # m.batch_id of each code
    if confirmed and (moved, counted, evented) != (issuance.quantity, 2 * batches, issuance.quantity + 1):
        raise RuntimeError(
            f"confirmation of {issuance.pk}: moved {moved} of {issuance.quantity}, counters {counted}, "
            f"events {evented}"
        )
    codes = []
    for (*_, code_id, batch_id, ciphertext, nonce, key_id, blind_index, serial, expires_at, last4, state,
         valid_until) in rows:
        if code_id is None:
            continue
        code = Code(
            id=code_id, batch_id=batch_id, ciphertext=bytes(ciphertext), nonce=bytes(nonce), key_id=key_id,
            blind_index=bytes(blind_index), serial=serial, expires_at=expires_at, last4=last4,
            state=state, issuance_id=issuance.pk,
        )
        code._state.adding, code._state.db = False, connection.alias
        code.batch = Batch(id=batch_id, valid_until=valid_until)
        codes.append(code)
    issuance.claimed_codes = codes
    return issuance, bool(confirmed)
