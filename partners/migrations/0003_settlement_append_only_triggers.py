"""Ledger entries, statements, their lines and events are append-only in the database.

A trigger refuses UPDATE and DELETE on both engines we run: PostgreSQL (a plpgsql
function shared by the four tables) and SQLite (RAISE(ABORT) triggers). TRUNCATE,
which only a test database reset uses, is not a row operation and is not refused.
"""

from django.db import migrations

TABLES = ("partners_ledgerentry", "partners_statement", "partners_statementline", "partners_statementevent")

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION partners_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP;
END;
$$ LANGUAGE plpgsql;
"""


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FUNCTION, params=None)
        for table in TABLES:
            schema_editor.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION partners_append_only();",
                params=None,
            )
    elif vendor == "sqlite":
        for table in TABLES:
            for op in ("UPDATE", "DELETE"):
                schema_editor.execute(
                    f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only ({op} refused)'); END;",
                    params=None,
                )


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table in TABLES:
        if vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};", params=None)
        elif vendor == "sqlite":
            for op in ("update", "delete"):
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_{op};", params=None)
    if vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS partners_append_only();", params=None)


class Migration(migrations.Migration):
    dependencies = [("partners", "0002_settlement")]
    operations = [migrations.RunPython(forwards, backwards)]
