"""Ledger entries: drop the indexes another one already serves, index statement refs where set.

Every priced redemption inserts one entry while its partner's chain head is locked,
and each index of the table is written by that insert. Of the eleven:

- partner_id: served by the unique (partner_id, seq) (chain reads, the partner API);
- agreement_id: served by (agreement_id, occurred_at) (statement closes);
- source_key's LIKE index (varchar_pattern_ops): nothing matches source keys by prefix;
- refers_to_statement_id: set on adjustments and payments only, so indexed where set
  (a partial index); accruals and reversals no longer write it.

On PostgreSQL the indexes are dropped by name and the unique constraint on source_key
is renamed to the model's, so neither the foreign keys nor the unique index are
rebuilt (the schema editor would re-validate each foreign key over the whole table).
Other engines (SQLite, development and tests) keep their schema: the same uniqueness,
more indexes.
"""

import django.db.models.deletion
from django.db import migrations, models

TABLE = "partners_ledgerentry"
FORWARD = [
    "DROP INDEX IF EXISTS partners_ledgerentry_partner_id_927d5517",
    "DROP INDEX IF EXISTS partners_ledgerentry_agreement_id_6225093f",
    "DROP INDEX IF EXISTS partners_ledgerentry_source_key_a4d54e7d_like",
    "DROP INDEX IF EXISTS partners_ledgerentry_refers_to_statement_id_c3a3ceaf",
    f"ALTER TABLE {TABLE} RENAME CONSTRAINT partners_ledgerentry_source_key_key TO ledgerentry_source_key_unique",
    f"CREATE INDEX ledgerentry_refers_to_idx ON {TABLE} (refers_to_statement_id) "
    "WHERE refers_to_statement_id IS NOT NULL",
]
BACKWARD = [
    "DROP INDEX IF EXISTS ledgerentry_refers_to_idx",
    f"ALTER TABLE {TABLE} RENAME CONSTRAINT ledgerentry_source_key_unique TO partners_ledgerentry_source_key_key",
    f"CREATE INDEX partners_ledgerentry_partner_id_927d5517 ON {TABLE} (partner_id)",
    f"CREATE INDEX partners_ledgerentry_agreement_id_6225093f ON {TABLE} (agreement_id)",
    f"CREATE INDEX partners_ledgerentry_source_key_a4d54e7d_like ON {TABLE} (source_key varchar_pattern_ops)",
    f"CREATE INDEX partners_ledgerentry_refers_to_statement_id_c3a3ceaf ON {TABLE} (refers_to_statement_id)",
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):

    dependencies = [
        ('partners', '0006_translatable_names'),
        ('vouchers', '0007_translatable_names'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(_run(FORWARD), _run(BACKWARD))],
            state_operations=[
                migrations.AlterField(
                    model_name='ledgerentry',
                    name='agreement',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='entries', to='partners.agreement', verbose_name='agreement'),
                ),
                migrations.AlterField(
                    model_name='ledgerentry',
                    name='partner',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='ledger_entries', to='partners.partner', verbose_name='partner'),
                ),
                migrations.AlterField(
                    model_name='ledgerentry',
                    name='refers_to_statement',
                    field=models.ForeignKey(blank=True, db_index=False, help_text='The statement an adjustment or payment concerns.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='referring_entries', to='partners.statement', verbose_name='refers to statement'),
                ),
                migrations.AlterField(
                    model_name='ledgerentry',
                    name='source_key',
                    field=models.CharField(max_length=200, verbose_name='source key'),
                ),
                migrations.AddIndex(
                    model_name='ledgerentry',
                    index=models.Index(condition=models.Q(('refers_to_statement__isnull', False)), fields=['refers_to_statement'], name='ledgerentry_refers_to_idx'),
                ),
                migrations.AddConstraint(
                    model_name='ledgerentry',
                    constraint=models.UniqueConstraint(fields=('source_key',), name='ledgerentry_source_key_unique'),
                ),
            ],
        ),
    ]
