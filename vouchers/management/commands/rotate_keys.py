"""Re-encrypt every stored code under the primary key (resumable, safe while serving).

Procedure: add the new key to VOUCHER_ENCRYPTION_KEYS, set VOUCHER_PRIMARY_KEY_ID to
it, deploy, run this command until it reports nothing left, then remove the old key.

    python manage.py rotate_keys --dry-run     # counts per key id, changes nothing
    python manage.py rotate_keys               # re-encrypt, 2,000 codes per transaction
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from vouchers import crypto
from vouchers.crypto import CodeIntegrityError, UnknownKeyId
from vouchers.services import key_rotation


class Command(BaseCommand):
    help = (
        "Re-encrypt every code that is not under VOUCHER_PRIMARY_KEY_ID, in chunks, each its own "
        "short transaction. Safe to interrupt and run again; safe while the service runs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Only report how many codes each key id holds."
        )
        parser.add_argument(
            "--chunk-size", type=int, default=key_rotation.DEFAULT_CHUNK_SIZE,
            help="Codes per transaction (default %(default)s).",
        )
        parser.add_argument(
            "--after-id", type=int, default=0, help="Start after this code id (default: from the start)."
        )
        parser.add_argument(
            "--max-chunks", type=int, default=None,
            help="Stop after this many chunks (the rest is left for the next run).",
        )
        parser.add_argument("--no-progress", action="store_true", help="Do not draw a progress bar.")

    def handle(self, *args, **options) -> None:
        if options["chunk_size"] < 1:
            raise CommandError("--chunk-size must be at least 1.")
        try:
            primary = crypto.key_ring().primary_id
            pending = key_rotation.pending_by_key()
        except UnknownKeyId as exc:
            raise CommandError(f"Key ring misconfigured: {exc}.") from None
        self.stdout.write(f"Primary key id: {primary}")
        if not pending:
            self.stdout.write(self.style.SUCCESS("Every code is already under the primary key."))
            return
        for key_id, n in pending.items():
            self.stdout.write(f"  {n:>12,} codes under key id {key_id!r}")
        try:
            key_rotation.ensure_keys_known(pending)
        except UnknownKeyId as exc:
            raise CommandError(f"Unknown key id: {exc}.") from None
        if options["dry_run"]:
            total = sum(pending.values())
            self.stdout.write(f"Dry run: {total:,} codes would be re-encrypted under {primary!r}.")
            return

        bar = tqdm(
            total=sum(pending.values()), unit="code", desc=f"Re-encrypting under {primary}",
            disable=options["no_progress"], file=self.stderr._out,
        )
        try:
            report = key_rotation.rotate_keys(
                chunk_size=options["chunk_size"], after_id=options["after_id"],
                max_chunks=options["max_chunks"], progress=bar.update,
            )
        except UnknownKeyId as exc:
            raise CommandError(
                f"Unknown key id: {exc}. Chunks finished before this stay re-encrypted; "
                "fix the key ring and run again."
            ) from None
        except CodeIntegrityError as exc:
            raise CommandError(
                f"A code failed to decrypt: {exc}. Chunks finished before this stay re-encrypted; "
                "nothing of the failing chunk was written."
            ) from None
        finally:
            bar.close()

        for key_id, n in sorted(report.rotated_by_key.items()):
            self.stdout.write(f"  re-encrypted {n:>12,} codes from key id {key_id!r}")
        self.stdout.write(
            f"Re-encrypted {report.rotated:,} codes under {primary!r} in {report.chunks} chunk(s); "
            f"last code id {report.last_id}."
        )
        if report.remaining:
            self.stdout.write(
                self.style.WARNING(
                    f"{report.remaining:,} codes are not yet under {primary!r} (locked by live traffic "
                    "or the run was limited). Run the command again to continue."
                )
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(f"Done: every code is under {primary!r}; old keys may be removed.")
            )
