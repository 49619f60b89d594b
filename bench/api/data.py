"""Data setup in child processes: Django, the bench merchant and stock, codes to a file, filler rows."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.api.common import (
    BASELINE_ROWS,
    COVERED_SKU,
    FILLER_SKU,
    FLASH_CODES,
    FLASH_SKU,
    INVENTORY_SKU,
    ISSUE_CHUNK,
    MERCHANT_SLUG,
    PREP_CUSTOMER,
    REDEEM_SKU,
    ROOT,
    STOREFRONT_NAME,
)


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()


def bench_caller():
    from config.callers import Caller
    from vouchers.models import StorefrontAPIKey

    api_key = StorefrontAPIKey.objects.select_related("storefront").get(storefront__name=STOREFRONT_NAME)
    storefront = api_key.storefront
    return Caller(kind="storefront", api_key_id=api_key.pk, merchant_id=storefront.merchant_id,
                  storefront_id=storefront.pk, reservation_ttl_seconds=storefront.reservation_ttl_seconds)


def step_prepare(args: argparse.Namespace) -> dict:
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)
    from bench.baseline.models import BenchCounter
    from fraud.models import AllowlistEntry
    from vouchers.models import Merchant, Product, Storefront
    from vouchers.services.api_keys import create_storefront_key
    from vouchers.services.generation import generate_batch

    merchant = Merchant.objects.create(name="Bench merchant", slug=MERCHANT_SLUG)
    storefront = Storefront.objects.create(merchant=merchant, name=STOREFRONT_NAME)
    # The stock the bench issues for itself (100 codes an order) passes the fraud checks
    # through an allow-list entry; the measured requests go through the default rules.
    AllowlistEntry.objects.create(merchant=merchant, kind="customer", value=PREP_CUSTOMER,
                                  note="API benchmark preparation")
    _, plaintext = create_storefront_key(storefront=storefront, name="bench", created_by=None)
    BenchCounter.objects.bulk_create(BenchCounter() for _ in range(BASELINE_ROWS))

    def product(sku: str) -> Product:
        return Product.objects.create(merchant=merchant, sku=sku, name=sku.title(), face_value=10,
                                      currency="USD")

    product(REDEEM_SKU)
    if getattr(args, "covered", False):
        from partners.models import Agreement, Partner
        from partners.services.agreements import add_version

        partner = Partner.objects.create(name="Bench partner", slug="bench-partner")
        agreement = Agreement.objects.create(merchant=merchant, partner=partner, currency="USD")
        add_version(agreement=agreement, products=[product(COVERED_SKU)], basis="redeemed",
                    direction="merchant_pays_partner", valid_from=datetime(2020, 1, 1, tzinfo=UTC),
                    unit_amount_minor=125)
    for run in range(1, args.flash_products + 1):
        generate_batch(product=product(FLASH_SKU.format(run)), count=FLASH_CODES)
    if args.inventory:
        generate_batch(product=product(INVENTORY_SKU), count=args.inventory)
    return {"api_key": plaintext}


def step_issue(args: argparse.Namespace) -> dict:
    """Issue `count` codes through the service layer; plaintexts to a file (mode 600)."""
    from vouchers.crypto import decrypt_code
    from vouchers.models import Issuance, Product
    from vouchers.services.generation import generate_batch
    from vouchers.services.issuance import issue_codes

    caller = bench_caller()
    if args.generate:
        generate_batch(product=Product.objects.get(sku=args.sku), count=args.count)
    path = Path(args.codes_file)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    issued = 0
    started = time.perf_counter()
    with os.fdopen(fd, "w") as out:
        while issued < args.count:
            quantity = min(ISSUE_CHUNK, args.count - issued)
            issuance = issue_codes(caller=caller, sku=args.sku, quantity=quantity,
                                   customer=PREP_CUSTOMER)
            if issuance.status != Issuance.Status.ISSUED:
                raise RuntimeError(f"preparation issuance came back {issuance.status}")
            out.writelines(decrypt_code(code) + "\n" for code in issuance.codes.order_by("pk"))
            issued += quantity
    return {"issued": issued, "seconds": time.perf_counter() - started}


def step_fill(args: argparse.Namespace) -> dict:
    """Fill the codes table to `total` rows with SQL filler in another product's batch.

    The filler rows are shaped like real ones (ciphertext 36 bytes, nonce 12, blind
    index 32 unique bytes) but random: they never need to decrypt. Secondary indexes
    are dropped and rebuilt around the load (much faster than maintaining them row by
    row); their definitions are read from the catalog and restored exactly. Stock
    counters are created for the filler batch; then VACUUM (ANALYZE) and a CHECKPOINT.
    """
    from django.db import connection, transaction

    from vouchers.models import Batch, Code, Merchant, Product
    from vouchers.services import stock

    table = Code._meta.db_table
    missing = args.total - Code.objects.count()
    if missing <= 0:
        return {"codes": Code.objects.count(), "inserted": 0}
    merchant = Merchant.objects.get(slug=MERCHANT_SLUG)
    product = Product.objects.create(merchant=merchant, sku=FILLER_SKU, name="Filler", face_value=10,
                                     currency="USD")
    with transaction.atomic():
        batch = Batch.objects.create(product=product, source=Batch.Source.GENERATED, size=missing,
                                     reference="bench filler")
        stock.create_counters(batch_id=batch.pk, available=missing)
    salt = secrets.token_hex(8)
    timings = {}
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '512MB'")
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT IN "
            "(SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)", [table, table])
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'u'", [table])
        uniques = cursor.fetchall()
        started = time.perf_counter()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        for name, _ in uniques:
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        chunk = 1_000_000
        for start in range(0, missing, chunk):
            end = min(start + chunk, missing)
            cursor.execute(
                f"""
                INSERT INTO {table} (batch_id, ciphertext, nonce, key_id, blind_index, last4, serial,
                                     expires_at, state, state_changed_at, is_canary)
                SELECT %s,
                       substring(sha512(convert_to(%s || ':c:' || i, 'UTF8')) from 1 for 36),
                       substring(sha512(convert_to(%s || ':n:' || i, 'UTF8')) from 1 for 12),
                       'filler',
                       sha256(convert_to(%s || ':b:' || i, 'UTF8')),
                       'ZZZZ', NULL, NULL, 'available', now(), false
                FROM generate_series(%s, %s) AS i
                """,
                [batch.pk, salt, salt, salt, start + 1, end],
            )
            print(f"  inserted {end:,} / {missing:,}", file=sys.stderr, flush=True)
        timings["insert_s"] = time.perf_counter() - started
        started = time.perf_counter()
        for name, definition in uniques:
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        for _, definition in indexes:
            cursor.execute(definition)
        timings["indexes_s"] = time.perf_counter() - started
        # Steady state of a large inventory: vacuumed (hint bits, visibility map),
        # statistics fresh, the bulk load's dirty pages written out, so that the figures
        # measure the size of the tables and not the aftermath of loading them.
        started = time.perf_counter()
        cursor.execute(f"VACUUM (ANALYZE) {table}")
        cursor.execute("ANALYZE")
        cursor.execute("CHECKPOINT")
        timings["vacuum_analyze_checkpoint_s"] = time.perf_counter() - started
        cursor.execute(f"SELECT pg_total_relation_size('{table}')")
        size = cursor.fetchone()[0]
    return {"codes": Code.objects.count(), "inserted": missing, "table_bytes": size, **timings}
