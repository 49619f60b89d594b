"""Create (idempotently) demo data to try the service with, and print how to log in.

    python manage.py demo            # human-readable
    python manage.py demo --json     # one JSON object on stdout

Running it again creates no second merchant, product, batch or user. Each run
re-sets the two demo passwords (they are stored nowhere in clear, so this is the
only way to print them) and creates one new storefront API key; earlier keys stay
valid.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from partners.models import Agreement, Partner
from partners.services.agreements import add_version
from partners.services.keys import create_partner_key
from vouchers.codeformat import CodeFormat
from vouchers.models import Merchant, MerchantStaff, Product, Storefront
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
STAFF_PERMISSION_APPS = ("vouchers", "fraud", "partners")


def _ensure_user(*, username: str, superuser: bool) -> tuple[object, str]:
    """Create the user if missing and set a fresh random password; returns (user, password)."""
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(
        username=username, defaults={"email": f"{username}@example.com"}
    )
    password = secrets.token_urlsafe(15)
    user.set_password(password)
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


def _create_api_key(*, storefront: Storefront, created_by) -> str:
    """A new storefront API key; only its hash is stored, so the plaintext is returned once."""
    _, key = create_storefront_key(
        storefront=storefront, name=f"demo {timezone.now():%Y-%m-%d %H:%M:%S}", created_by=created_by
    )
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
        with transaction.atomic():
            merchant, _ = Merchant.objects.get_or_create(
                slug=MERCHANT_SLUG, defaults={"name": MERCHANT_NAME}
            )
            admin, admin_password = _ensure_user(username=ADMIN_USERNAME, superuser=True)
            staff, staff_password = _ensure_user(username=STAFF_USERNAME, superuser=False)
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
        api_key = _create_api_key(storefront=storefront, created_by=admin)
        _, partner_api_key = create_partner_key(
            partner=partner, name=f"demo {timezone.now():%Y-%m-%d %H:%M:%S}"
        )
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
        w(f"  superuser        {r['admin_username']} / {r['admin_password']}")
        w(f"  merchant staff   {r['staff_username']} / {r['staff_password']}  ({r['merchant_name']})")
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
        w("Passwords are re-set and a new API key is created each time this command runs.")
