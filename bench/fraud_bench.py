"""What fraud rules cost: issuance and redemption with the default rules on, then off.

Runs in-process through the whole API stack (Django test client: authentication,
rate limits, idempotency, fraud assessment, services) against PostgreSQL and Redis,
one request at a time, so the figure is the cost per request of the rules. "Off"
disables every rule of the merchant: the lockout check and the stored decision still
run, as they do in production. On and off runs alternate (and which goes first
alternates from pair to pair), so drift on a shared machine hits both alike; the
report gives medians and the ratio per pair.

Every request comes from a new customer, IP and device, so no rule fires: this is the
price of evaluating the rules (counters in Redis, lists in PostgreSQL), not of refusing.

    python bench/fraud_bench.py --requests 400 --runs 3

Needs PostgreSQL on 127.0.0.1:5432 (user postgres) and Redis on 127.0.0.1:6379.
Creates and drops the database vouchers_bench_fraud; uses Redis db 9 (flushed).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "vouchers_bench_fraud"
PG = "postgres://postgres@127.0.0.1:5432"


def configure_environment() -> None:
    os.environ.update(
        DATABASE_URL=f"{PG}/{DB_NAME}",
        REDIS_URL="redis://127.0.0.1:6379/9",
        DJANGO_DEBUG="false",
        VOUCHER_ENCRYPTION_KEYS=f"bench:{base64.b64encode(secrets.token_bytes(32)).decode()}",
        VOUCHER_PRIMARY_KEY_ID="bench",
        VOUCHER_INDEX_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        SECRET_KEY=secrets.token_urlsafe(50),
        API_RATE_PER_KEY="100000000/m",
        API_RATE_PER_ADDRESS="100000000/m",
        CELERY_TASK_ALWAYS_EAGER="true",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    sys.path.insert(0, str(ROOT))


def psql(sql: str) -> None:
    subprocess.run(["psql", f"{PG}/postgres", "-qc", sql], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=400, help="requests per run and operation")
    parser.add_argument("--runs", type=int, default=3, help="pairs of runs (on, off)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    configure_environment()
    psql(f"DROP DATABASE IF EXISTS {DB_NAME}")
    psql(f"CREATE DATABASE {DB_NAME}")
    try:
        results = run(args)
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            psql(f"DROP DATABASE IF EXISTS {DB_NAME}")
    print(json.dumps(results, indent=2))


def run(args) -> dict:
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from fraud.models import FraudRule
    from fraud.services.rules import ensure_default_rules
    from tests.factories import MerchantFactory, ProductFactory, StorefrontFactory
    from vouchers.models import StorefrontAPIKey
    from vouchers.services.generation import generate_batch

    call_command("migrate", verbosity=0)
    cache.clear()
    merchant = MerchantFactory()
    storefront = StorefrontFactory(merchant=merchant)
    _, key = StorefrontAPIKey.objects.create_key(name="bench", storefront=storefront)
    product = ProductFactory(merchant=merchant)
    total = args.requests * args.runs * 2
    generate_batch(product=product, count=total + 50)  # + the warm-up
    ensure_default_rules(merchant_id=merchant.pk)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    counter = iter(range(10**9))

    def customer() -> dict:
        n = next(counter)
        return {"customer": f"cust-{n}", "ip": f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}",
                "device_id": f"dev-{n}", "email": f"c{n}@example.com"}

    def set_rules(on: bool) -> None:
        FraudRule.objects.filter(merchant=merchant).update(enabled=on)

    def issue_once() -> str:
        response = client.post("/api/v1/issuances/", {"sku": product.sku, **customer()}, format="json",
                               HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
        assert response.status_code == 201 and response.json()["status"] == "issued", response.content
        return response.json()["codes"][0]["code"]

    def redeem_once(code: str) -> None:
        response = client.post("/api/v1/redemptions/", {"code": code, **customer()}, format="json",
                               HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
        assert response.status_code == 201, response.content

    def timed(fn, items) -> float:
        start = time.perf_counter()
        for item in items:
            fn(*item)
        return len(items) / (time.perf_counter() - start)

    # warm up connections, caches and code paths
    set_rules(True)
    for _ in range(20):
        redeem_once(issue_once())

    rows = {"issue": {"on": [], "off": []}, "redeem": {"on": [], "off": []}}
    for pair in range(args.runs):
        # Alternate which mode goes first, so neither always meets a warmer or a bigger table.
        for mode in (("on", "off") if pair % 2 == 0 else ("off", "on")):
            set_rules(mode == "on")
            start = time.perf_counter()
            codes = [issue_once() for _ in range(args.requests)]
            rate = args.requests / (time.perf_counter() - start)
            rows["issue"][mode].append(rate)
            rows["redeem"][mode].append(timed(redeem_once, [(c,) for c in codes]))

    report = {"requests_per_run": args.requests, "pairs": args.runs}
    for operation, modes in rows.items():
        pair_ratios = [on / off for on, off in zip(modes["on"], modes["off"], strict=True)]
        report[operation] = {
            "rules_on_req_per_s": round(statistics.median(modes["on"]), 1),
            "rules_off_req_per_s": round(statistics.median(modes["off"]), 1),
            "median_ratio_on_over_off": round(statistics.median(pair_ratios), 3),
            "loss_percent": round(100 * (1 - statistics.median(pair_ratios)), 1),
            "runs_on": [round(r, 1) for r in modes["on"]],
            "runs_off": [round(r, 1) for r in modes["off"]],
        }
    return report


if __name__ == "__main__":
    main()
