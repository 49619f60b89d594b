"""What the confirm and cancel fast paths share: one statement on a caller's issuance.

Both statements bring back, on every row, their counts first, then the issuance and its
product as they are after the statement (or as they were, when it changed nothing),
then one code per row.
"""

from __future__ import annotations

import random
from datetime import datetime

from django.conf import settings

from vouchers.fastpath import cursor as fastpath_cursor
from vouchers.models import Issuance, Product
from vouchers.selectors import ModelRows

ISSUANCE_ROWS, PRODUCT_ROWS = ModelRows(Issuance, "i"), ModelRows(Product, "p")


def run(
    sql: str, *, counts: int, issuance_id, storefront_id: int, actor: str, now: datetime
) -> tuple[list[tuple], Issuance | None]:
    """(the rows, the issuance with its product) of the statement; ([], None) if the
    caller has no such issuance. `counts`: how many counts lead each row."""
    params = {
        "issuance_id": issuance_id, "storefront_id": storefront_id, "now": now, "actor": actor,
        "shard": random.randrange(settings.VOUCHER_STOCK_SHARDS),
    }
    with fastpath_cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return [], None
    end = counts + len(ISSUANCE_ROWS.fields)
    issuance = ISSUANCE_ROWS.instance(rows[0][counts:end])
    issuance.product = PRODUCT_ROWS.instance(rows[0][end:end + len(PRODUCT_ROWS.fields)])
    return rows, issuance
