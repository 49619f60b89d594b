"""manage.py check_invariants: every invariant checked against the stored data."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from vouchers.ops.invariants import CHECKS, run_checks


class Command(BaseCommand):
    help = ("Check the product's invariants against the data (stock counts and counters, issuances "
            "all-or-nothing, one issuance per code, one live redemption per code, events against "
            "states, settlement ledger against statements). Exits 1 and lists every violation.")

    def add_arguments(self, parser):
        parser.add_argument("--only", action="append", choices=sorted(CHECKS), default=None,
                            help="run only this check (repeatable)")

    def handle(self, *args, only=None, **options):
        violations = run_checks(only)
        names = only or list(CHECKS)
        if not violations:
            self.stdout.write(f"All {len(names)} invariant checks hold: {', '.join(names)}.")
            return
        for violation in violations:
            self.stderr.write(str(violation))
        raise CommandError(f"{len(violations)} invariant violation(s) found.", returncode=1)
