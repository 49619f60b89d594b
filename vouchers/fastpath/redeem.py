"""Redeem one issued code: one statement on PostgreSQL (see vouchers/fastpath/__init__.py)."""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime
from functools import cache

from django.conf import settings
from django.db import connection

from fraud.models import RiskAssessment
from vouchers import fastpath
from vouchers.fastpath import assessment as deferred
from vouchers.fastpath import code_move
from vouchers.fastpath import cursor as fastpath_cursor
from vouchers.models import Batch, Code, Redemption

# Table names and columns come from the models; every value is a parameter.
REDEEM_SQL = f"""
WITH code AS (
    -- Invariant 1 (redeemed at most once): the WHERE is the check. Only an issued code
    -- of a batch that is not void, inside its validity window and its own expiry, moves.
    UPDATE {Code._meta.db_table} AS c
       SET state = 'redeemed', redeemed_at = %(now)s, state_changed_at = %(now)s
      FROM {Batch._meta.db_table} AS b
     WHERE c.id = %(code_id)s AND c.state = 'issued'
       AND b.id = c.batch_id AND b.status <> 'void'
       AND (b.valid_until IS NULL OR b.valid_until > %(now)s)
       AND (c.expires_at IS NULL OR c.expires_at > %(now)s)
    RETURNING c.id, c.batch_id, c.issuance_id
), redemption AS (
    -- The redemption row; the unique live redemption per code is the backstop.
    INSERT INTO {Redemption._meta.db_table}
           (id, code_id, storefront_id, partner_id, order_ref, location, redeemed_at, reversed_at,
            reversal_reason)
    SELECT %(redemption_id)s, code.id, %(storefront_id)s, %(partner_id)s, %(order_ref)s,
           %(location)s, %(now)s, NULL, ''
      FROM code
    RETURNING id
), assessment AS (
    -- The fraud decision judged exactly this redemption: a stored one (a review) is
    -- linked once, never re-linked ...
    UPDATE {RiskAssessment._meta.db_table} AS a
       SET redemption_id = redemption.id
      FROM redemption
     WHERE a.id = %(assessment_id)s AND a.issuance_id IS NULL AND a.redemption_id IS NULL
    RETURNING a.id
), assessment_new AS (
    -- ... and a deferred allow is written here, linked, only if the redemption is.
    INSERT INTO {RiskAssessment._meta.db_table} ({deferred.COLUMNS}, redemption_id)
    SELECT {{deferred_values}}, redemption.id FROM redemption WHERE %(assessment_new)s
    RETURNING id
), {code_move.counters_cte(from_state="issued", to_state="redeemed")}
, {code_move.event_cte(action="redeemed", from_state="issued", to_state="redeemed")}
SELECT (SELECT id FROM redemption), (SELECT count(*) FROM assessment),
       (SELECT count(*) FROM counters), (SELECT count(*) FROM event), (SELECT id FROM assessment_new)
"""  # noqa: S608


@cache
def _sql() -> str:
    return fastpath.compact(REDEEM_SQL.format(deferred_values=deferred.values_sql()))


def redeem(
    *, code: Code, storefront_id: int | None, partner_id: int | None, order_ref: str, location: str,
    assessment: RiskAssessment, actor: str, now: datetime,
) -> Redemption | None:
    """The redemption, or None if the code could not be redeemed now (nothing written).

    Must run inside the request's transaction. Raises RuntimeError if a row that the
    redemption implies is missing (the transaction then rolls back).
    """
    redemption_id = uuid.uuid4()
    params = deferred.params(assessment)
    params |= {
        "now": now, "code_id": code.pk, "redemption_id": redemption_id,
        "storefront_id": storefront_id, "partner_id": partner_id, "order_ref": order_ref,
        "location": location,
        "shard": random.randrange(settings.VOUCHER_STOCK_SHARDS), "actor": actor,
        "details": json.dumps({"redemption": str(redemption_id)}),
    }
    with fastpath_cursor() as cursor:
        cursor.execute(_sql(), params)
        returned, assessed, counted, evented, assessment_id = cursor.fetchone()
    if returned is None:
        return None
    if assessment_id is not None:
        assessed += 1
        assessment.pk = assessment_id
        assessment._state.adding, assessment._state.db = False, connection.alias
    if (assessed, counted, evented) != (1, 2, 1):
        raise RuntimeError(
            f"redemption of code {code.pk}: assessment {assessed}, counters {counted}, events {evented}"
        )
    assessment.redemption_id = redemption_id
    code.state, code.redeemed_at, code.state_changed_at = Code.State.REDEEMED, now, now
    redemption = Redemption(
        id=redemption_id, code=code, storefront_id=storefront_id, partner_id=partner_id,
        order_ref=order_ref, location=location, redeemed_at=now,
    )
    redemption._state.adding = False
    redemption._state.db = connection.alias
    return redemption
