"""Keep a check's allowing decision: one statement on PostgreSQL (see vouchers/fastpath/__init__.py).

A check changes no code, so its fraud decision is all it writes. A deny or review is
stored when it is made (with its fraud event, in a transaction of its own); an allow
is deferred (`assess(defer_allow=True)`) and written here by one INSERT in autocommit,
its columns all parameters (vouchers/fastpath/assessment.py): no BEGIN, no COMMIT, and
no ORM compilation of the INSERT.
"""

from __future__ import annotations

from functools import cache

from django.db import connection

from fraud.models import RiskAssessment
from vouchers import fastpath
from vouchers.fastpath import assessment as deferred
from vouchers.fastpath import cursor as fastpath_cursor

# Table and column names come from the model; every value is a parameter.
CHECK_SQL = f"""
-- The decision that judged this check, linked to no issuance or redemption (a check
-- makes neither); one row, so autocommit makes it atomic.
INSERT INTO {RiskAssessment._meta.db_table} ({deferred.COLUMNS})
SELECT {{deferred_values}}
RETURNING id
"""  # noqa: S608


@cache
def _sql() -> str:
    return fastpath.compact(CHECK_SQL.format(deferred_values=deferred.values_sql()))


def keep(assessment: RiskAssessment) -> None:
    """Write a deferred (unsaved) decision; it is then a stored row, as `save()` leaves it."""
    if assessment.pk is not None:
        raise ValueError(f"assessment {assessment.pk} is stored already")
    with fastpath_cursor() as cursor:
        cursor.execute(_sql(), deferred.params(assessment))
        (assessment.pk,) = cursor.fetchone()
    assessment._state.adding, assessment._state.db = False, connection.alias
