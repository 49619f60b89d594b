"""PostgreSQL fast paths of the storefront's write operations, in raw SQL.

One module per operation, named after it. Each runs one data-modifying CTE that does
the whole effect in one round trip, with a comment on every clause saying which
invariant it keeps (numbered as in docs/invariants.md). No row back means nothing
was written; the portable service then explains the refusal with one read. Confirm
and cancel bring back the issuance as it was when they changed nothing, so a final
status is answered without a second query. SQLite
(and any other engine) takes the portable ORM path in the service, with the same
behaviour; `enabled()` decides. What two operations share has a module of its own:
`held` (confirm and cancel: the statement run on the caller's issuance and its rows
read back), `code_move` (redemption and reversal: the counters and the event of one
code moved between issued and redeemed).
"""

from __future__ import annotations

from django.db import connection

# The statements are sent compacted and prepared once per connection (config/prepared.py,
# shared with the settlement ledger's append).
from config.prepared import compact, cursor

__all__ = ["compact", "cursor", "enabled"]


def enabled() -> bool:
    return connection.vendor == "postgresql"
