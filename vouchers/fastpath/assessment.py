"""The fraud decision an operation's statement writes itself (an allow, deferred).

`risk.assess_or_refuse(..., defer_allow=True)` returns an allow unsaved; the issue and
redeem statements insert it in a CTE of their own, linked to the row they created,
so the decision costs neither a round trip nor a second version of its row (INSERT
then UPDATE). A stored decision (a review) is linked by an UPDATE as before.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.db import connection

from fraud.models import RiskAssessment

_LINKS = ("issuance_id", "redemption_id")
_FIELDS = [
    f for f in RiskAssessment._meta.concrete_fields if not f.primary_key and f.attname not in _LINKS
]
COLUMNS = ", ".join(f.column for f in _FIELDS)


@cache
def values_sql() -> str:
    """The SELECT list of the deferred decision's columns, each a typed parameter."""
    return ", ".join(f"%(ra_{f.column})s::{f.db_type(connection)}" for f in _FIELDS)


def params(assessment: RiskAssessment) -> dict:
    """`assessment_new` says whether the statement inserts the decision (deferred) or
    links the stored one (`assessment_id`); `ra_*` are the deferred row's values."""
    out: dict[str, Any] = {"assessment_new": assessment.pk is None, "assessment_id": assessment.pk}
    new = assessment.pk is None
    for f in _FIELDS:
        value = f.get_db_prep_save(f.pre_save(assessment, add=True), connection) if new else None
        out[f"ra_{f.column}"] = value
    return out
