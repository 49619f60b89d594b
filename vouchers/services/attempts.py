"""Finding a code a caller typed, and treating every miss as a failed attempt.

Check and redemption share this: a code that is unknown to the caller, still in
stock, reserved, or a canary is answered exactly like an unknown code (404
`unknown_code`), so a guesser learns nothing.
"""

from __future__ import annotations

from vouchers import selectors
from vouchers.callers import Caller, CustomerContext
from vouchers.exceptions import UnknownCode
from vouchers.models import Code

NEVER_ISSUED_STATES = (Code.State.AVAILABLE, Code.State.RESERVED)


def find_usable_code(*, caller: Caller, raw: str, context: CustomerContext) -> Code:
    """The caller's issued (or formerly issued) code for what was typed. Raises UnknownCode."""
    row = selectors.find_code(raw)
    if row is None or row.batch.product.merchant_id != caller.merchant_id:
        raise UnknownCode("No such code.")
    if row.is_canary or row.state in NEVER_ISSUED_STATES:
        raise UnknownCode("No such code.")
    return row
