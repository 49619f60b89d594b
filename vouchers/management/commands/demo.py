"""Create (idempotently) demo data to try the service with, and print how to log in.

    python manage.py demo            # human-readable
    python manage.py demo --json     # one JSON object on stdout

Running it again creates no second merchant, product, batch, user or key, and
prints the same logins: a run never invalidates a password or key printed before.
The database keeps only hashes, so the plaintexts it prints are kept beside the
development keys in a git-ignored, owner-only file (`.local/demo-credentials.json`,
setting DEMO_CREDENTIALS_FILE). A password is set only when its user is created;
a user that already exists keeps its password (if the file does not know it, the
output says so instead of re-setting it). The storefront key is re-printed while
it still works; a new one is made only when the stored one was revoked or lost. The
demo partner's API key is kept the same way.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission, User
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from partners.api.authentication import partner_caller
from partners.models import Agreement, Partner
from partners.services.agreements import add_version
from partners.services.keys import create_partner_key
from vouchers.codeformat import CodeFormat
from vouchers.models import Merchant, MerchantStaff, Product, Storefront, StorefrontAPIKey
from vouchers.selectors import available_by_product
from vouchers.services.api_keys import create_storefront_key
from vouchers.services.generation import generate_batch

BASE_URL = "http://127.0.0.1:8000"
MERCHANT_SLUG = "demo"
MERCHANT_NAME = "Demo Merchant"
STOREFRONT_NAME = "Demo Storefront"
ADMIN_USERNAME = "admin"
STAFF_USERNAME = "merchant-staff"
PARTNER_SLUG = "demo-partner"
PARTNER_SKU = "DEMO-STREAM-1M"  # the product the demo partner honours under its agreement
CODES_PER_PRODUCT = 200


@dataclass(frozen=True)
class DemoProduct:
    sku: str
    name: str
    face_value: Decimal
    currency: str
    fmt: CodeFormat
    with_partner: bool = False


DEMO_PRODUCTS = (
    DemoProduct("DEMO-GIFT-50", "Gift card 50 USD", Decimal("50.00"), "USD",
                CodeFormat(prefix="GIFT", group=4, check_char=True)),
    DemoProduct("DEMO-STREAM-1M", "Streaming, 1 month", Decimal("30.00"), "CNY",
                CodeFormat(group=4), with_partner=True),
    DemoProduct("DEMO-COFFEE-10", "Coffee voucher 10 USD", Decimal("10.00"), "USD", CodeFormat()),
)

# What the demo staff member may do in the admin: everything of the three apps but delete.
STAFF_PERMISSION_APPS = ("vouchers", "fraud", "partners", "audit")


UNKNOWN_PASSWORD = None  # the user existed before and the credentials file does not know its password


def credentials_file() -> Path:
    """Where the demo's printed secrets are kept (git-ignored, beside the development keys)."""
    default = Path(settings.BASE_DIR) / ".local" / "demo-credentials.json"
    return Path(getattr(settings, "DEMO_CREDENTIALS_FILE", default))


def load_credentials(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        return {}  # a damaged file is rewritten from what is valid now


def save_credentials(path: Path, credentials: dict) -> None:
    """Write the file with owner-only permissions from the start, replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(credentials, handle, indent=2)
    os.replace(partial, path)


def _ensure_user(*, username: str, superuser: bool, known_password: str | None) -> tuple[User, str | None]:
    """Create the user if missing; returns (user, its password, or None when it is not known).

    The password is set only for a new user (the one remembered from an earlier run
    if there is one, so a reset database keeps the printed login). An existing user
    keeps its password: re-setting it would lock out whoever uses the one printed
    before. A remembered password that no longer matches (changed since) is not shown.
    """
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(
        username=username, defaults={"email": f"{username}@example.com"}
    )
    if created:
        password: str | None = known_password or secrets.token_urlsafe(15)
        user.set_password(password)
    else:
        password = known_password if known_password and user.check_password(known_password) else None
    user.is_active = True
    user.is_staff = True
    user.is_superuser = superuser
    user.save()
    return user, password


def _ensure_partner_agreement(*, merchant: Merchant, partner: Partner) -> list[str]:
    """The demo agreement: the partner honours its streaming product, paid 10% of face value
    per redemption, settled monthly in Europe/Berlin. Returns the SKUs it covers."""
    product = Product.objects.get(merchant=merchant, sku=PARTNER_SKU)
    agreement, _ = Agreement.objects.get_or_create(
        merchant=merchant, partner=partner, currency=product.currency,
        defaults={"name": "Demo streaming benefit", "period": "monthly", "timezone": "Europe/Berlin",
                  "dispute_window_days": 14},
    )
    if not agreement.versions.exists():
        add_version(
            agreement=agreement, products=[product], basis="redeemed", direction="merchant_pays_partner",
            valid_from=timezone.now().replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0),
            rate_bps=1000,
        )
    return sorted({p.sku for v in agreement.versions.all() for p in v.products.all()})


def _demo_api_key(*, storefront: Storefront, created_by, known_key: str | None) -> str:
    """The demo storefront's key: the remembered one while it still works, else a new one.

    Only a key's hash is stored in the database, so the plaintext is re-printed from
    the credentials file; a key that was revoked, expired or belongs elsewhere is
    replaced by a new key (earlier keys are never revoked here).
    """
    if known_key:
        try:
            api_key = StorefrontAPIKey.objects.get_from_key(known_key)
        except StorefrontAPIKey.DoesNotExist:
            api_key = None
        if isinstance(api_key, StorefrontAPIKey) and api_key.storefront_id == storefront.pk:
            return known_key
    _, key = create_storefront_key(
        storefront=storefront, name=f"demo {timezone.now():%Y-%m-%d %H:%M:%S}", created_by=created_by
    )
    return key


def _demo_partner_key(*, partner: Partner, known_key: str | None) -> str:
    """The demo partner's key, like the storefront's: re-printed while it still works."""
    if known_key:
        prefix, _dot, _secret = known_key.partition(".")
        caller = partner_caller(prefix, known_key)
        if caller is not None and caller.partner_id == partner.pk:
            return known_key
    _, key = create_partner_key(partner=partner, name=f"demo {timezone.now():%Y-%m-%d %H:%M:%S}")
    return key


class Command(BaseCommand):
    help = (
        "Create demo data (merchant, storefront with a new API key, products with generated "
        "stock, an admin and a merchant staff user) and print the logins. Idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print one JSON object instead of text.")

    def handle(self, *args, **options) -> None:
        result = self.build()
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
        else:
            self.print_human(result)

    def build(self) -> dict:
        path = credentials_file()
        known = load_credentials(path)
        with transaction.atomic():
            merchant, _ = Merchant.objects.get_or_create(
                slug=MERCHANT_SLUG, defaults={"name": MERCHANT_NAME}
            )
            admin, admin_password = _ensure_user(
                username=ADMIN_USERNAME, superuser=True, known_password=known.get("admin_password")
            )
            staff, staff_password = _ensure_user(
                username=STAFF_USERNAME, superuser=False, known_password=known.get("staff_password")
            )
            MerchantStaff.objects.get_or_create(user=staff, defaults={"merchant": merchant})
            staff.user_permissions.add(
                *Permission.objects.filter(content_type__app_label__in=STAFF_PERMISSION_APPS)
                .filter(~Q(codename__startswith="delete_"))
            )
            storefront, _ = Storefront.objects.get_or_create(merchant=merchant, name=STOREFRONT_NAME)
            partner, _ = Partner.objects.get_or_create(
                slug=PARTNER_SLUG,
                defaults={"name": "Demo Partner Brand", "contact_email": "finance@partner.example.com"},
            )
            products = []
            for spec in DEMO_PRODUCTS:
                product, _ = Product.objects.get_or_create(
                    merchant=merchant, sku=spec.sku,
                    defaults={
                        "name": spec.name, "face_value": spec.face_value, "currency": spec.currency,
                        "partner": partner if spec.with_partner else None,
                    },
                )
                if not product.batches.exists():
                    generate_batch(
                        product=product, count=CODES_PER_PRODUCT, fmt=spec.fmt, created_by=admin,
                        reference="demo",
                    )
                products.append(product)
            partner_skus = _ensure_partner_agreement(merchant=merchant, partner=partner)
        api_key = _demo_api_key(
            storefront=storefront, created_by=admin, known_key=known.get("storefront_api_key")
        )
        partner_api_key = _demo_partner_key(partner=partner, known_key=known.get("partner_api_key"))
        remembered = {
            "admin_password": admin_password,
            "staff_password": staff_password,
            "storefront_api_key": api_key,
            "partner_api_key": partner_api_key,
        }
        if remembered != {name: known.get(name) for name in remembered}:
            save_credentials(path, remembered)
        available = available_by_product([p.pk for p in products])
        return {
            "admin_username": ADMIN_USERNAME,
            "admin_password": admin_password,
            "staff_username": STAFF_USERNAME,
            "staff_password": staff_password,
            "storefront_api_key": api_key,
            "storefront": storefront.name,
            "storefront_id": storefront.pk,
            "merchant": merchant.slug,
            "merchant_name": merchant.name,
            "partner": partner.slug,
            "partner_api_key": partner_api_key,
            "partner_skus": partner_skus,
            "skus": [p.sku for p in products],
            "products": [
                {
                    "sku": p.sku, "name": p.name, "face_value": str(p.face_value),
                    "currency": p.currency, "available": available[p.pk],
                }
                for p in products
            ],
            "api_base": f"{BASE_URL}/api/v1/",
            "admin_url": f"{BASE_URL}/admin/",
        }

    def print_human(self, r: dict) -> None:
        w = self.stdout.write
        w(self.style.SUCCESS("Demo data is ready."))
        w("")
        w(f"Admin:             {r['admin_url']}")
        admin_password = self.shown(r["admin_password"], r["admin_username"])
        staff_password = self.shown(r["staff_password"], r["staff_username"])
        w(f"  superuser        {r['admin_username']} / {admin_password}")
        w(f"  merchant staff   {r['staff_username']} / {staff_password}  ({r['merchant_name']})")
        w(f"Storefront:        {r['storefront']} ({r['merchant_name']})")
        w(f"  API key          {r['storefront_api_key']}")
        w(f"API:               {r['api_base']}  (send 'Authorization: Api-Key <key>')")
        w(f"Partner:           {r['partner']} honours {', '.join(r['partner_skus'])}")
        w(f"  API key          {r['partner_api_key']}  (partner endpoints: {r['api_base']}partner/)")
        w("Products:")
        for p in r["products"]:
            w(f"  {p['sku']:<16} {p['name']:<24} {p['face_value']:>8} {p['currency']}  "
              f"{p['available']:>5} in stock")
        w("")
        w("Running this command again prints the same logins and key; it never re-sets them.")

    @staticmethod
    def shown(password: str | None, username: str) -> str:
        if password is not None:
            return password
        return f"(unchanged; set a new one with: manage.py changepassword {username})"
