"""Database triggers that make the audit table append-only, on PostgreSQL and SQLite.

The model refuses updates and deletes early with a clear error (AppendOnlyViolation);
these triggers refuse them for every other writer too: raw SQL, a shell, another
program. Tampering then needs someone who can drop a trigger, and what they change
still breaks the hash chain (`manage.py verify_audit`).
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections

TABLE = "audit_auditentry"

POSTGRES = [
    f"""
    CREATE OR REPLACE FUNCTION {TABLE}_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION '{TABLE} is append-only (% refused)', TG_OP;
    END;
    $$ LANGUAGE plpgsql
    """,
    f"DROP TRIGGER IF EXISTS {TABLE}_no_update_delete ON {TABLE}",
    f"""
    CREATE TRIGGER {TABLE}_no_update_delete BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION {TABLE}_append_only()
    """,
]
SQLITE = [
    f"""
    CREATE TRIGGER IF NOT EXISTS {TABLE}_no_update BEFORE UPDATE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only (UPDATE refused)'); END
    """,
    f"""
    CREATE TRIGGER IF NOT EXISTS {TABLE}_no_delete BEFORE DELETE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only (DELETE refused)'); END
    """,
]
DROP = {
    "postgresql": [f"DROP TRIGGER IF EXISTS {TABLE}_no_update_delete ON {TABLE}"],
    "sqlite": [f"DROP TRIGGER IF EXISTS {TABLE}_no_update", f"DROP TRIGGER IF EXISTS {TABLE}_no_delete"],
}


def create_triggers(connection) -> None:
    statements = {"postgresql": POSTGRES, "sqlite": SQLITE}.get(connection.vendor)
    if statements is None:
        raise NotImplementedError(f"no append-only triggers for {connection.vendor}")
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def drop_triggers(connection) -> None:
    """Only for maintenance and tests that play the attacker (or must flush SQLite)."""
    with connection.cursor() as cursor:
        for statement in DROP.get(connection.vendor, []):
            cursor.execute(statement)


def ensure_append_only_triggers(sender=None, using: str = DEFAULT_DB_ALIAS, **kwargs) -> None:
    """post_migrate: (re)create the triggers once the table exists."""
    connection = connections[using]
    if TABLE in connection.introspection.table_names():
        create_triggers(connection)
