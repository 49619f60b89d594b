"""Make the audit table append-only in the database (PostgreSQL and SQLite triggers)."""

from django.db import migrations


def forwards(apps, schema_editor):
    from vouchers.audit.guards import create_triggers

    create_triggers(schema_editor.connection)


def backwards(apps, schema_editor):
    from vouchers.audit.guards import drop_triggers

    drop_triggers(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_audit_log")]
    operations = [migrations.RunPython(forwards, backwards)]
