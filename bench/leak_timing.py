"""Does `codes/check/` (or a redemption) answer a never-issued code as fast as an unknown one?

    DATABASE_URL=postgres://... REDIS_URL=redis://.../N python bench/leak_timing.py [--samples 80]

A never-issued code (still in stock) must be answered exactly like a code that does not
exist (404 `unknown_code`), also in time: otherwise a guesser with a few dozen samples
tells "this code exists, unsold" from "no such code". The script drives the whole Django
stack in-process (middleware, DRF, services, PostgreSQL, Redis; Celery publishing to the
Redis broker as in production, no worker needed) and alternates the two kinds of request,
each with a fresh code, so drift hits both alike. It prints the medians and quartiles of
each and their difference, in milliseconds; results are recorded in BENCHMARKS.md.

It creates a merchant, a storefront and a product with generated codes in the database
it is given (run it on a scratch database after `manage.py migrate`), lifts the lockout
and rate limits for its own storefront so that every request reaches the code lookup,
and purges the Celery queue it filled.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=80, help="requests of each kind (default 80)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--path", choices=["check", "redeem"], default="check")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get("REDIS_URL"):
        print("Set DATABASE_URL (PostgreSQL) and REDIS_URL: the timing matters on the production stack.")
        return 2

    import django

    django.setup()
    from django.conf import settings
    from rest_framework.test import APIClient

    from config.celery import app
    from vouchers.crypto import decrypt_code
    from vouchers.models import Code, Merchant, Product, Storefront, StorefrontAPIKey
    from vouchers.services.generation import generate_batch

    settings.FRAUD_LOCKOUT_THRESHOLDS = {"api_key": 10**9, "customer": 10**9, "ip": 10**9}
    settings.API_RATE_PER_KEY = settings.API_RATE_PER_ADDRESS = "1000000/m"
    app.conf.task_always_eager = False

    tag = uuid.uuid4().hex[:8]
    merchant = Merchant.objects.create(name=f"Leak bench {tag}", slug=f"leak-bench-{tag}")
    storefront = Storefront.objects.create(merchant=merchant, name="bench")
    _, key = StorefrontAPIKey.objects.create_key(name="bench", storefront=storefront)
    product = Product.objects.create(merchant=merchant, sku=f"LEAK-{tag}", name="bench", face_value="10.00",
                                     currency="USD")
    total = args.samples + args.warmup
    batch = generate_batch(product=product, count=total)
    unissued = [decrypt_code(c) for c in Code.objects.filter(batch=batch).order_by("pk")]

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")

    def request(code: str) -> float:
        started = time.perf_counter()
        if args.path == "check":
            response = client.post("/api/v1/codes/check/", {"code": code}, format="json")
        else:
            response = client.post("/api/v1/redemptions/", {"code": code}, format="json",
                                   HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex)
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 404 and response.json()["code"] == "unknown_code", response.content
        return elapsed

    # "unknown_again" is a second series of unknown codes: the difference between the two
    # unknown series is the noise floor of this run (an A/A comparison).
    times: dict[str, list[float]] = {"unknown": [], "never_issued": [], "unknown_again": []}
    for i in range(total):
        trio = [("unknown", secrets.token_hex(9).upper()), ("never_issued", unissued[i]),
                ("unknown_again", secrets.token_hex(9).upper())]
        trio = trio[i % 3:] + trio[:i % 3]
        for kind, code in trio:
            elapsed = request(code)
            if i >= args.warmup:
                times[kind].append(elapsed)

    with app.connection_for_write() as conn:
        purged = app.control.purge(connection=conn)
    print(f"path {args.path}, {args.samples} samples of each kind (ms; purged {purged} queued tasks)")
    for kind, values in times.items():
        q1, med, q3 = statistics.quantiles(values, n=4)
        print(f"  {kind:13s} median {med:6.2f}  p25 {q1:6.2f}  p75 {q3:6.2f}")
    def median(kind: str) -> float:
        return statistics.median(times[kind])

    leak_gap = median("never_issued") - median("unknown")
    noise = median("unknown_again") - median("unknown")
    print(f"  difference of medians (never issued - unknown): {leak_gap:+.2f} ms")
    print(f"  noise floor (unknown again - unknown):          {noise:+.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
