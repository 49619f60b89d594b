"""On PostgreSQL, make the event table append-only at the database level."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION vouchers_codeevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'vouchers_codeevent is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER vouchers_codeevent_no_update_delete
    BEFORE UPDATE OR DELETE ON vouchers_codeevent
    FOR EACH ROW EXECUTE FUNCTION vouchers_codeevent_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS vouchers_codeevent_no_update_delete ON vouchers_codeevent;
DROP FUNCTION IF EXISTS vouchers_codeevent_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("vouchers", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
