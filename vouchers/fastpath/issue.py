"""Issue (or hold) N codes of a product: one statement on PostgreSQL (see vouchers/fastpath/__init__.py)."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from django.conf import settings
from django.db import connection

from fraud.models import RiskAssessment
from vouchers import fastpath
from vouchers.fastpath import assessment as deferred
from vouchers.fastpath import cursor as fastpath_cursor
from vouchers.models import Batch, Code, CodeEvent, Issuance, Product, StockCounter

_CODE, _BATCH = Code._meta.db_table, Batch._meta.db_table

# Table names, columns and state constants come from the models; every value is a parameter.
ISSUE_SQL = f"""
WITH claim AS (
    -- Invariant 1 (a code is sold at most once): lock available codes, skipping rows
    -- another claim holds, first expiring sellable batch first, primary-key order within
    -- it. Only an active batch inside its validity window and a code inside its own
    -- expiry are stock (the partial index on available codes serves the walk).
    SELECT c.id, c.batch_id
      FROM {_CODE} AS c JOIN {_BATCH} AS b ON b.id = c.batch_id
     WHERE b.product_id = %(product_id)s AND b.status = 'active'
       AND (b.valid_from IS NULL OR b.valid_from <= %(now)s)
       AND (b.valid_until IS NULL OR b.valid_until > %(now)s)
       AND c.state = 'available' AND (c.expires_at IS NULL OR c.expires_at > %(now)s)
     ORDER BY b.valid_until ASC NULLS LAST, b.id, c.id
     LIMIT %(quantity)s
       FOR UPDATE OF c SKIP LOCKED
), enough AS (
    -- Invariant 5 (N codes or none): every write below hangs off the issuance row,
    -- which exists only if all N codes were claimed.
    SELECT count(*) = %(quantity)s AS ok FROM claim
), issuance AS (
    INSERT INTO {Issuance._meta.db_table}
           (id, storefront_id, product_id, quantity, customer, order_ref, status, reserved_until,
            context, created_at, updated_at)
    SELECT %(issuance_id)s, %(storefront_id)s, %(product_id)s, %(quantity)s, %(customer)s,
           %(order_ref)s, %(status)s, %(reserved_until)s, %(context)s::jsonb, %(now)s, %(now)s
      FROM enough WHERE enough.ok
    RETURNING id
), moved AS (
    -- The claimed codes move to the issuance (the state named in the WHERE: the locks
    -- make a shortfall impossible; the caller treats one as a loud error).
    UPDATE {_CODE} AS c
       SET state = %(to_state)s, issuance_id = issuance.id, state_changed_at = %(now)s
      FROM claim, issuance
     WHERE c.id = claim.id AND c.state = 'available'
    RETURNING c.id, c.batch_id, c.ciphertext, c.nonce, c.key_id, c.blind_index, c.serial, c.expires_at,
              c.last4
), deltas AS (
    SELECT claim.batch_id, 'available' AS state, -count(*) AS delta FROM claim, issuance
     GROUP BY claim.batch_id
    UNION ALL
    SELECT claim.batch_id, %(to_state)s, count(*) FROM claim, issuance GROUP BY claim.batch_id
), counters AS (
    -- Invariant 2 (counts by state add up): one shard per batch and state, available
    -- -n and the target state +n in one UPDATE. Rows are found through the unique
    -- (batch, state, shard) index from the deltas in (batch, state) order, the order of
    -- every other writer. (Locking them first in a CTE of their own does not work: a
    -- row another claim changed meanwhile is then skipped by the UPDATE, whose
    -- snapshot predates that change.)
    UPDATE {StockCounter._meta.db_table} AS s
       SET count = s.count + d.delta
      FROM (SELECT * FROM deltas ORDER BY batch_id, state) AS d
     WHERE s.batch_id = d.batch_id AND s.state = d.state AND s.shard = %(shard)s
    RETURNING s.id
), events AS (
    -- Invariant 4: one append-only event per code and one for the issuance.
    INSERT INTO {CodeEvent._meta.db_table}
           (batch_id, code_id, issuance_id, action, from_state, to_state, actor, details, created_at)
    SELECT claim.batch_id, claim.id, issuance.id, %(action)s, 'available', %(to_state)s,
           %(actor)s, '{{{{}}}}'::jsonb, %(now)s
      FROM claim, issuance
    UNION ALL
    SELECT NULL, NULL, issuance.id, %(issuance_action)s, '', %(status)s, %(actor)s,
           %(issuance_details)s::jsonb, %(now)s
      FROM issuance
    RETURNING id
), assessment AS (
    -- The fraud decision judged exactly this issuance: a stored one (a review) is
    -- linked once, never re-linked ...
    UPDATE {RiskAssessment._meta.db_table} AS a
       SET issuance_id = issuance.id
      FROM issuance
     WHERE a.id = %(assessment_id)s AND a.issuance_id IS NULL AND a.redemption_id IS NULL
    RETURNING a.id
), assessment_new AS (
    -- ... and a deferred allow is written here, linked, only if the issuance is: a short
    -- claim then leaves nothing of the request (its refusal is stored in this same
    -- transaction). A review's row and fraud event stay; its refusal rolls back.
    INSERT INTO {RiskAssessment._meta.db_table} ({deferred.COLUMNS}, issuance_id)
    SELECT {{deferred_values}}, issuance.id FROM issuance WHERE %(assessment_new)s
    RETURNING id
), summary AS (
    SELECT (SELECT ok FROM enough) AS ok,
           (SELECT count(*) FROM moved) AS moved, (SELECT count(*) FROM counters) AS counted,
           (SELECT count(*) FROM events) AS evented, (SELECT count(*) FROM assessment) AS assessed,
           (SELECT id FROM assessment_new) AS assessment_id
)
SELECT summary.ok, summary.assessment_id, summary.moved, summary.counted, summary.evented, summary.assessed,
       -- A short claim wrote nothing: the refusal's `available` in the same round trip.
       CASE WHEN summary.ok THEN NULL ELSE (
           SELECT coalesce(sum(s.count), 0)
             FROM {StockCounter._meta.db_table} AS s JOIN {_BATCH} AS b ON b.id = s.batch_id
            WHERE b.product_id = %(product_id)s AND s.state = 'available' AND b.status = 'active'
              AND (b.valid_from IS NULL OR b.valid_from <= %(now)s)
              AND (b.valid_until IS NULL OR b.valid_until > %(now)s)
       ) END,
       m.id, m.batch_id, m.ciphertext, m.nonce, m.key_id, m.blind_index, m.serial, m.expires_at,
       m.last4, b.valid_until
  FROM summary
  LEFT JOIN moved AS m ON true
  LEFT JOIN {_BATCH} AS b ON b.id = m.batch_id
 ORDER BY m.id
"""  # noqa: S608


@dataclass
class Shortfall:
    """Fewer codes than asked for. `wrote_nothing`: no decision row was stored either."""

    available: int
    wrote_nothing: bool


@cache
def _sql() -> str:
    return fastpath.compact(ISSUE_SQL.format(deferred_values=deferred.values_sql()))


def issue(
    *, product: Product, storefront_id: int, quantity: int, customer: str, order_ref: str,
    status: str, reserved_until: datetime | None, context: dict, assessment: RiskAssessment,
    actor: str, action: str, now: datetime,
) -> Issuance | Shortfall:
    """The issuance with its codes (`issuance.claimed_codes`), or a Shortfall (nothing written).

    Must run inside the request's transaction. Raises RuntimeError if a row the
    issuance implies is missing (the transaction then rolls back).
    """
    issuance_id = uuid.uuid4()
    to_state = Code.State.ISSUED if status == Issuance.Status.ISSUED else Code.State.RESERVED
    params = deferred.params(assessment)
    params |= {
        "product_id": product.pk, "now": now, "quantity": quantity, "issuance_id": issuance_id,
        "storefront_id": storefront_id, "customer": customer, "order_ref": order_ref,
        "status": status, "reserved_until": reserved_until, "context": json.dumps(context),
        "to_state": to_state, "shard": random.randrange(settings.VOUCHER_STOCK_SHARDS),
        "action": action, "issuance_action": f"issuance_{action}", "actor": actor,
        "issuance_details": json.dumps({"quantity": quantity}),
    }
    with fastpath_cursor() as cursor:
        cursor.execute(_sql(), params)
        rows = cursor.fetchall()
    ok, assessment_id, moved, counted, evented, assessed, available = rows[0][:7]
    if not ok:
        return Shortfall(available=max(int(available), 0), wrote_nothing=assessment.pk is None)
    if assessment_id is not None:
        assessed += 1
        assessment.pk = assessment_id
        assessment._state.adding, assessment._state.db = False, connection.alias
    batches = len({row[8] for row in rows})  # m.batch_id
    if (moved, counted, evented, assessed) != (quantity, 2 * batches, quantity + 1, 1):
        raise RuntimeError(
            f"issuance of {quantity}: moved {moved}, counters {counted}, events {evented}, "
            f"assessment {assessed}"
        )
    codes = []
    for (*_, code_id, batch_id, ciphertext, nonce, key_id, blind_index, serial, expires_at,
         last4, valid_until) in rows:
        code = Code(
            id=code_id, batch_id=batch_id, ciphertext=bytes(ciphertext), nonce=bytes(nonce),
            key_id=key_id, blind_index=bytes(blind_index), serial=serial, expires_at=expires_at,
            last4=last4, state=to_state, issuance_id=issuance_id, state_changed_at=now,
        )
        code._state.adding, code._state.db = False, connection.alias
        code.batch = Batch(id=batch_id, valid_until=valid_until)
        codes.append(code)
    issuance = Issuance(
        id=issuance_id, storefront_id=storefront_id, product=product, quantity=quantity,
        customer=customer, order_ref=order_ref, status=status, reserved_until=reserved_until,
        context=context, created_at=now, updated_at=now,
    )
    issuance._state.adding, issuance._state.db = False, connection.alias
    issuance.claimed_codes = codes
    assessment.issuance_id = issuance_id
    return issuance
