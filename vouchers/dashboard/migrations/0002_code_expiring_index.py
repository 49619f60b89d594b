"""A partial index for the dashboard's codes expiring by their own date (not their batch's).

Only codes that carry their own expiry and can still be wasted (available or sold, not
redeemed) are in it, so it costs nothing for codes without an expiry and shrinks as
codes are redeemed; it holds every column the count reads (an index-only scan). It
lives in the console's migrations because only the console reads it
(vouchers.dashboard.rollup.refresh_expiring_codes); the Code model does not declare it.
"""

from django.db import migrations

CREATE = (
    "CREATE INDEX IF NOT EXISTS dashboard_code_expiring_idx ON vouchers_code (expires_at, batch_id, state) "
    "WHERE expires_at IS NOT NULL AND state IN ('available', 'issued')"
)
DROP = "DROP INDEX IF EXISTS dashboard_code_expiring_idx"


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0001_rollups_and_alerts"),
        ("vouchers", "0006_loadjob"),
    ]

    operations = [migrations.RunSQL(CREATE, DROP)]
