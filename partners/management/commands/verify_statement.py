"""Verify a statement document offline against its detached JWS and a published key set."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from partners.signing import verify_detached


class Command(BaseCommand):
    help = "Verify a signed statement: --document FILE --signature SIG (text or file) --keys JWKS file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--document", required=True, type=Path)
        parser.add_argument("--signature", required=True, help="The compact JWS, or a file holding it.")
        parser.add_argument("--keys", required=True, type=Path, help="The JWKS from /api/v1/partner/keys/.")

    def handle(self, *args, **options) -> None:
        document = Path(options["document"]).read_bytes()
        signature = options["signature"]
        if Path(signature).is_file():
            signature = Path(signature).read_text()
        jwks = json.loads(Path(options["keys"]).read_text())
        if not verify_detached(document, signature.strip(), jwks):
            raise CommandError("signature INVALID for this document")
        self.stdout.write("signature valid")
