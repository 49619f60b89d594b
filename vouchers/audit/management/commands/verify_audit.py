"""Check the audit log's hash chains: exit 1 and list every break if one was tampered with.

    python manage.py verify_audit

Prints each chain's length and last hash (worth noting down elsewhere: with them, even
someone who could rewrite the whole table and knew the key could be caught later).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from vouchers.audit.services import verify_chains


class Command(BaseCommand):
    help = "Verify the audit log's hash chains; fails listing each changed, deleted or inserted entry."

    def handle(self, *args, **options) -> None:
        reports, findings = verify_chains()
        for report in reports:
            self.stdout.write(
                f"{report.chain}: {report.entries} entries, head #{report.head_seq} {report.head_hash}"
            )
        if findings:
            for finding in findings:
                self.stderr.write(f"BROKEN {finding}")
            raise CommandError(f"audit log verification failed: {len(findings)} problem(s)")
        self.stdout.write(self.style.SUCCESS(f"Audit log intact: {len(reports)} chain(s) verified."))
