"""manage.py import_codes --product SKU FILE: load a supplier's file of codes as one batch."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from vouchers.exceptions import ImportRejected, InvalidBatchSettings
from vouchers.importfile import UnreadableFile, check_encoding, count_data_rows, format_from_filename
from vouchers.models import Product
from vouchers.services.imports import import_codes

REPORT_LINES = 50


class Command(BaseCommand):
    help = (
        "Import a supplier's file of codes (CSV: code[,serial[,expiry]] with an optional header; "
        "XLSX: the same columns in the first sheet; TXT: one code per line) as one new batch. "
        "All rows or none: any bad row refuses the file with a per-line report, unless "
        "--skip-invalid keeps the valid rows (the skipped ones are still reported)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", metavar="FILE", help="Path of the CSV, XLSX or TXT file.")
        parser.add_argument("--product", required=True, metavar="SKU", help="SKU of the product.")
        parser.add_argument(
            "--merchant", metavar="SLUG", help="Merchant slug (needed when several merchants use the SKU)."
        )
        parser.add_argument(
            "--encoding", help="Text encoding (default: UTF-8 with or without BOM, else GB18030/GBK)."
        )
        parser.add_argument(
            "--format", dest="file_format", choices=["csv", "xlsx", "txt"],
            help="File format (default: from the file name's extension).",
        )
        parser.add_argument(
            "--skip-invalid", action="store_true",
            help="Import the valid rows and skip (and report) the bad ones instead of refusing the file.",
        )
        parser.add_argument(
            "--case-sensitive", action="store_true",
            help="Codes differ by letter case (by default case is folded on import and lookup).",
        )
        parser.add_argument("--valid-from", metavar="ISO", help="Batch valid from (ISO 8601).")
        parser.add_argument("--valid-until", metavar="ISO", help="Batch valid until (ISO 8601).")
        parser.add_argument(
            "--allow-weak-codes", action="store_true",
            help="Import codes whose space is too small for their number (recorded in the batch event).",
        )
        parser.add_argument("--reference", default="", help="Supplier's reference (default: the file name).")
        parser.add_argument("--user", metavar="USERNAME", help="Staff user on whose behalf the import runs.")
        parser.add_argument(
            "--report-lines", type=int, default=REPORT_LINES, metavar="N",
            help=f"Report lines to print (default {REPORT_LINES}).",
        )
        parser.add_argument("--no-progress", action="store_true", help="Do not show a progress bar.")

    def handle(self, *args, **options) -> None:
        product = self._product(options["product"], options["merchant"])
        created_by = self._user(options["user"]) if options["user"] else None
        path = options["file"]
        file_format = options["file_format"]
        bar = None
        if not options["no_progress"]:
            bar = self._progress_bar(path, file_format, options["encoding"], product.sku)
        try:
            result = import_codes(
                product=product, file=path, filename=path, encoding=options["encoding"],
                file_format=file_format, skip_invalid=options["skip_invalid"],
                case_sensitive=options["case_sensitive"],
                valid_from=_when(options["valid_from"], "--valid-from"),
                valid_until=_when(options["valid_until"], "--valid-until"),
                created_by=created_by, allow_weak_codes=options["allow_weak_codes"],
                reference=options["reference"], progress=bar.update if bar else None,
            )
        except FileNotFoundError:
            raise CommandError(f"No such file: {path}") from None
        except ImportRejected as exc:
            self._print_report(exc.report, exc.bad_rows, options["report_lines"])
            raise CommandError(exc.detail) from None
        except InvalidBatchSettings as exc:
            raise CommandError(exc.detail) from None
        finally:
            if bar is not None:
                bar.close()
        if result.skipped:
            self.stderr.write(f"Skipped {result.skipped:,} bad rows (--skip-invalid):")
            self._print_report(result.report, result.skipped, options["report_lines"])
        self.stdout.write(self.style.SUCCESS(
            f"Imported {result.imported:,} codes into batch {result.batch.pk} of {product.sku} "
            f"({product.merchant.slug}); skipped {result.skipped:,}."
        ))

    def _product(self, sku: str, merchant: str | None) -> Product:
        products = Product.objects.select_related("merchant").filter(sku=sku)
        if merchant:
            products = products.filter(merchant__slug=merchant)
        found = list(products[:2])
        if not found:
            where = f" for merchant {merchant!r}" if merchant else ""
            raise CommandError(f"No product with SKU {sku!r}{where}.")
        if len(found) > 1:
            raise CommandError(f"Several merchants sell SKU {sku!r}; name one with --merchant.")
        return found[0]

    def _user(self, username: str):
        try:
            return get_user_model().objects.get_by_natural_key(username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user {username!r}.") from None

    def _progress_bar(self, path: str, file_format: str | None, encoding: str | None, sku: str):
        """A bar counting the file's data rows (not its header), labelled with the file and product."""
        from tqdm import tqdm

        total = None
        try:
            with open(path, "rb") as stream:
                total = count_data_rows(
                    stream, file_format=file_format or format_from_filename(path),
                    encoding=check_encoding(encoding) if encoding else None,
                )
        except (OSError, ValueError, UnreadableFile):
            total = None  # the import itself reports the problem
        return tqdm(total=total, unit=" rows", desc=f"Importing {Path(path).name} into {sku}",
                    file=sys.stderr, mininterval=0.5)

    def _print_report(self, report: list[tuple[int, str]], count: int, limit: int) -> None:
        for line, reason in report[: max(limit, 0)]:
            self.stderr.write(f"  line {line}: {reason}" if line else f"  file: {reason}")
        shown = min(len(report), max(limit, 0))
        if count > shown:
            self.stderr.write(f"  ... and {count - shown:,} more bad rows ({count:,} in all).")


def _when(value: str | None, option: str) -> datetime | None:
    """An aware datetime from an ISO 8601 date (midnight) or datetime. Raises CommandError."""
    if not value:
        return None
    try:
        parsed = parse_datetime(value)
        if parsed is None and (day := parse_date(value)) is not None:
            parsed = datetime.combine(day, datetime.min.time())
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(f"{option} is not an ISO 8601 date or datetime.")
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed
