"""Statement lines: the per-row foreign keys to their statement and entry become triggers.

A close inserts all lines of a statement with one INSERT ... SELECT before the
statement row (which holds the signed document of those lines) can exist, so the
foreign keys had to be deferred, and checking them meant one look-up per line at
commit: the largest single cost of closing a million-entry statement. Instead:

- PostgreSQL: an AFTER INSERT ... FOR EACH STATEMENT trigger checks, in one query over
  the inserted rows, that every line names an existing ledger entry; an AFTER INSERT
  trigger on partners_statement checks that the statement has exactly line_count lines
  (so lines cannot be added to a statement before or while it is inserted without the
  insert failing). The document column is compressed with lz4 where the server has it
  (faster than the default pglz for documents of hundreds of MB).
- SQLite: the same checks as row triggers (RAISE(ABORT)), and the append-only triggers
  of the rebuilt lines table again.

Entries and statements cannot be deleted (migration 0003), so a reference checked on
insert stays valid. The index on original_statement goes too: nothing looks lines up
by it, and every line of a close paid for it.
"""

import django.db.models.deletion
from django.db import migrations, models


PG_FORWARD = """
CREATE OR REPLACE FUNCTION partners_statementline_entries_exist() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM partners_new_lines n
               WHERE NOT EXISTS (SELECT 1 FROM partners_ledgerentry e WHERE e.id = n.entry_id)) THEN
        RAISE EXCEPTION 'partners_statementline: a line names no ledger entry'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER partners_statementline_entries_exist AFTER INSERT ON partners_statementline
    REFERENCING NEW TABLE AS partners_new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION partners_statementline_entries_exist();

CREATE OR REPLACE FUNCTION partners_statement_lines_match() RETURNS trigger AS $$
DECLARE
    found bigint;
BEGIN
    SELECT count(*) INTO found FROM partners_statementline WHERE statement_id = NEW.id;
    IF found <> NEW.line_count THEN
        RAISE EXCEPTION 'partners_statement %: line_count % but % lines', NEW.id, NEW.line_count, found
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER partners_statement_lines_match AFTER INSERT ON partners_statement
    FOR EACH ROW EXECUTE FUNCTION partners_statement_lines_match();
"""

PG_BACKWARD = """
DROP TRIGGER IF EXISTS partners_statementline_entries_exist ON partners_statementline;
DROP FUNCTION IF EXISTS partners_statementline_entries_exist();
DROP TRIGGER IF EXISTS partners_statement_lines_match ON partners_statement;
DROP FUNCTION IF EXISTS partners_statement_lines_match();
"""

# SQLite rebuilds a table to alter a column, which drops its triggers: the append-only
# triggers of migration 0003 are created again for the rebuilt table.
SQLITE_FORWARD = [
    *(
        f"CREATE TRIGGER IF NOT EXISTS partners_statementline_no_{op.lower()} BEFORE {op} "
        f"ON partners_statementline "
        f"BEGIN SELECT RAISE(ABORT, 'partners_statementline is append-only ({op} refused)'); END;"
        for op in ("UPDATE", "DELETE")
    ),
    "CREATE TRIGGER partners_statementline_entry_exists BEFORE INSERT ON partners_statementline "
    "WHEN NOT EXISTS (SELECT 1 FROM partners_ledgerentry WHERE id = NEW.entry_id) "
    "BEGIN SELECT RAISE(ABORT, 'partners_statementline: a line names no ledger entry'); END;",
    "CREATE TRIGGER partners_statement_lines_match AFTER INSERT ON partners_statement "
    "WHEN (SELECT count(*) FROM partners_statementline WHERE statement_id = NEW.id) <> NEW.line_count "
    "BEGIN SELECT RAISE(ABORT, 'partners_statement: line_count does not match its lines'); END;",
]

SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS partners_statementline_entry_exists;",
    "DROP TRIGGER IF EXISTS partners_statement_lines_match;",
]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_FORWARD, params=None)
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
            )
            if cursor.fetchone():
                schema_editor.execute(
                    "ALTER TABLE partners_statement ALTER COLUMN document SET COMPRESSION lz4", params=None
                )
    elif schema_editor.connection.vendor == "sqlite":
        for sql in SQLITE_FORWARD:
            schema_editor.execute(sql, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD, params=None)
    elif schema_editor.connection.vendor == "sqlite":
        for sql in SQLITE_BACKWARD:
            schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("partners", "0004_signing_keys"),
    ]

    operations = [
        migrations.AlterField(
            model_name="statementline",
            name="entry",
            field=models.OneToOneField(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="line",
                to="partners.ledgerentry",
            ),
        ),
        migrations.AlterField(
            model_name="statementline",
            name="statement",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="lines",
                to="partners.statement",
            ),
        ),
        migrations.AlterField(
            model_name="statementline",
            name="original_statement",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                help_text="Set on a line that corrects an earlier statement.",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="partners.statement",
            ),
        ),
        migrations.RunPython(forward, backward),
    ]
