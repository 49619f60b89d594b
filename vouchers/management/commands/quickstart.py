"""Set up the embedded default and serve it: migrate, demo data, runserver.

    python manage.py quickstart              # serves http://127.0.0.1:8000/
    python manage.py quickstart --no-serve   # set up and print, do not serve
"""

from __future__ import annotations

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

ADDRESS = "127.0.0.1:8000"


class Command(BaseCommand):
    help = "Apply migrations, create the demo data, print the logins and start the development server."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-serve", action="store_true", help="Set up only; do not start the server.")

    def handle(self, *args, **options) -> None:
        self.stdout.write("Applying migrations...")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("demo", stdout=self.stdout._out, stderr=self.stderr._out)
        if options["no_serve"]:
            return
        self.stdout.write(f"\nStarting the service at http://{ADDRESS}/ (Ctrl+C to stop).\n")
        # No autoreloader: it would re-run migrate and demo in a child process for nothing.
        call_command("runserver", ADDRESS, use_reloader=False)
