"""PostgreSQL fast paths of the storefront's write operations, in raw SQL.

One module per operation, named after it. Each runs one data-modifying CTE that does
the whole effect in one round trip, with a comment on every clause saying which
invariant it keeps (numbered as in docs/invariants.md). No row back means nothing
was written; the portable service then explains the refusal with one read. Confirm
and cancel bring back the issuance as it was when they changed nothing, so a final
status is answered without a second query. SQLite
(and any other engine) takes the portable ORM path in the service, with the same
behaviour; `enabled()` decides.
"""

from __future__ import annotations

import re

from django.db import connection


def enabled() -> bool:
    return connection.vendor == "postgresql"


def compact(sql: str) -> str:
    """The statement as sent: comments dropped, whitespace folded.

    psycopg caches the parsing of a statement's placeholders only for statements of at
    most 4,096 bytes; the commented source of an operation is longer, and parsing it
    again on every request cost as much CPU as a small query. The SQL holds no string
    literal with `--` or runs of spaces.
    """
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return re.sub(r"\s+", " ", " ".join(lines)).strip()
