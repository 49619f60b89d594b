"""Close every settlement period that ended at or before --as-of (default now)."""

from __future__ import annotations

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from partners.services.statements import FutureCloseRefused, auto_confirm_due, close_statements


def parse_moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if timezone.is_naive(moment):
        raise CommandError("--as-of needs a time zone, e.g. 2026-01-01T00:00:00Z")
    return moment


class Command(BaseCommand):
    help = "Close due settlement statements (safe to run twice and concurrently)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", type=parse_moment, help="ISO 8601 time with zone; default now.")
        parser.add_argument(
            "--allow-future", action="store_true", help="Allow a future --as-of (drills, tests)."
        )

    def handle(self, *args, **options) -> None:
        try:
            created = close_statements(as_of=options["as_of"], allow_future=options["allow_future"])
        except FutureCloseRefused as exc:
            raise CommandError(f"{exc}.") from None
        confirmed = auto_confirm_due()
        for statement in created:
            self.stdout.write(
                f"statement {statement.pk} #{statement.number} {statement.partner_id}/{statement.currency} "
                f"{statement.period_start:%Y-%m-%d}..{statement.period_end:%Y-%m-%d}: "
                f"{statement.line_count} lines, total {statement.total_minor}"
            )
        self.stdout.write(f"{len(created)} statements closed, {confirmed} auto-confirmed.")
