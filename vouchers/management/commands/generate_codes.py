"""Generate a batch of random codes for a product from the command line.

    python manage.py generate_codes --product DEMO-GIFT-50 --count 10000 \
        --prefix GIFT --group 4 --check-char --valid-until 2027-01-01

The plaintext codes are never printed: they are sealed straight into the database
and handed out only by issuance (or revealed by staff with the permission).
"""

from __future__ import annotations

from datetime import UTC, datetime, time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from tqdm import tqdm

from vouchers.codeformat import UNAMBIGUOUS_ALPHABET, CodeFormat
from vouchers.exceptions import InvalidBatchSettings
from vouchers.models import Product
from vouchers.services.generation import generate_batch


def parse_moment(value: str, *, option: str) -> datetime:
    """An ISO 8601 date or date-time; a date means midnight UTC, a naive time means UTC."""
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"{option} must be an ISO 8601 date or date-time, got {value!r}.")
        moment = datetime.combine(day, time.min)
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=UTC)
    return moment


def find_product(*, sku: str, merchant_slug: str | None) -> Product:
    """The product with this SKU (of this merchant). Raises CommandError if none or ambiguous."""
    products = Product.objects.select_related("merchant").filter(sku=sku)
    if merchant_slug:
        products = products.filter(merchant__slug=merchant_slug)
    found = list(products[:2])
    if not found:
        where = f" of merchant {merchant_slug!r}" if merchant_slug else ""
        raise CommandError(f"No product with SKU {sku!r}{where}.")
    if len(found) > 1:
        raise CommandError(f"Several merchants have SKU {sku!r}; name one with --merchant SLUG.")
    return found[0]


class Command(BaseCommand):
    help = (
        "Generate a batch of random codes for a product. Defaults: an unambiguous alphabet "
        f"({UNAMBIGUOUS_ALPHABET}) and a length giving at least 80 bits of entropy. Settings whose "
        "code space is below count x 10^12 are refused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--product", required=True, metavar="SKU", help="SKU of the product.")
        parser.add_argument("--merchant", metavar="SLUG", help="Merchant slug, if the SKU is ambiguous.")
        parser.add_argument("--count", required=True, type=int, help="How many codes to generate.")
        parser.add_argument(
            "--length", type=int, default=None,
            help="Random characters per code (default: enough for 80 bits of entropy).",
        )
        parser.add_argument("--alphabet", default=UNAMBIGUOUS_ALPHABET, help="Characters to draw from.")
        parser.add_argument("--prefix", default="", help="Fixed prefix, e.g. GIFT.")
        parser.add_argument(
            "--group", type=int, default=0, metavar="N",
            help="Split the code into hyphen-separated groups of N characters (0: no grouping).",
        )
        parser.add_argument(
            "--check-char", action="store_true", help="Append a check character (Luhn mod N)."
        )
        parser.add_argument("--valid-from", help="Start of validity (ISO 8601 date or date-time).")
        parser.add_argument("--valid-until", help="End of validity (ISO 8601 date or date-time).")
        parser.add_argument("--reference", default="", help="A note stored on the batch.")
        parser.add_argument("--user", metavar="USERNAME", help="Staff user recorded as the batch's creator.")
        parser.add_argument("--no-progress", action="store_true", help="Do not draw a progress bar.")

    def handle(self, *args, **options) -> None:
        product = find_product(sku=options["product"], merchant_slug=options["merchant"])
        count: int = options["count"]
        created_by = None
        if options["user"]:
            created_by = get_user_model().objects.filter(username=options["user"]).first()
            if created_by is None:
                raise CommandError(f"No user named {options['user']!r}.")
        valid_from = (
            parse_moment(options["valid_from"], option="--valid-from") if options["valid_from"] else None
        )
        valid_until = (
            parse_moment(options["valid_until"], option="--valid-until") if options["valid_until"] else None
        )
        try:
            fmt = CodeFormat(
                length=options["length"], alphabet=options["alphabet"], prefix=options["prefix"],
                group=options["group"], check_char=options["check_char"],
            )
        except ValueError as exc:
            raise CommandError(f"Invalid code format: {exc}.") from None

        bar = tqdm(
            total=max(count, 0), unit="code", desc=f"Generating {product.sku}",
            disable=options["no_progress"], file=self.stderr._out,
        )
        try:
            batch = generate_batch(
                product=product, count=count, fmt=fmt, valid_from=valid_from,
                valid_until=valid_until, created_by=created_by, reference=options["reference"],
                progress=bar.update,
            )
        except (InvalidBatchSettings, ValueError) as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()

        case = "sensitive" if batch.case_sensitive else "insensitive"
        self.stdout.write(
            self.style.SUCCESS(
                f"Batch {batch.pk}: {batch.size:,} codes for {product.sku} ({product.merchant.slug}), "
                f"{fmt.length} random characters from an alphabet of {len(fmt.alphabet)} "
                f"(~{fmt.entropy_bits:.0f} bits), case {case}."
            )
        )
