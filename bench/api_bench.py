"""Storefront API benchmarks: gunicorn on PostgreSQL + Redis, load from wrk.

    python bench/api_bench.py            # the full run (15-25 minutes on 2 busy cores)
    python bench/api_bench.py --quick    # a short smoke run (about 7 minutes)
    python bench/api_bench.py --only baseline,redeem --worker-class sync --workers 5

Prerequisites: PostgreSQL and Redis on 127.0.0.1 (--pg, --redis), and wrk
(Debian/Ubuntu: `apt-get install -y wrk`). Everything runs on 127.0.0.1.

What one run does (details in BENCHMARKS.md, "Storefront API"):

1. Creates its own databases (`vouchers_bench`, `vouchers_bench_inventory`; dropped
   first if they exist, dropped at the end unless --keep), migrates them (plus the
   bench-only baseline table), and creates a merchant, a storefront with an API key,
   products and generated stock through the service layer. Fresh encryption, index and
   secret keys are generated per run and passed in the environment, as in production.
2. Starts gunicorn with config/gunicorn.conf.py and DJANGO_SETTINGS_MODULE=bench.settings
   (the product plus a bare DRF endpoint, the baseline), DJANGO_DEBUG=false, Redis
   db 6 for the cache and rate limits. The rate limits run (Redis) but are set high
   enough never to refuse.
3. Rounds (--runs, default 3), each in this order so that drift hits every scenario:
   baseline at 16 connections, redemption at 16, baseline at 64, redemption at 64, the
   flash sale (5,000 issuance attempts for 1,000 codes at 64 connections). The codes
   redeemed were issued through `vouchers.services.issuance.issue_codes` just before
   and written (plaintext) to a temporary file outside the repository, one distinct
   code per request, each request with its own Idempotency-Key. After each flash sale
   the database is checked: exactly 1,000 issued, no code in two issuances, counts by
   state add up, no 5xx.
4. Sequential latency (one client, Python http.client loop) of the baseline, and the
   per-request cost of key checking measured in-process against PostgreSQL.
5. Inventory size: sequential issuance and redemption p50 with 10^4 codes stored, then
   the same database filled to 10^7 codes with SQL (filler rows of another product),
   ANALYZE, and again.
6. Prints the medians as a Markdown table and writes everything as JSON under
   bench/results/ (git-ignored). gunicorn is stopped at the end, also on error.

The same file holds the internal steps run in child processes with the bench
environment (`prepare`, `issue`, `verify-flash`, `fill`, `auth-cost`).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for bench.api

from bench.api.cli import main  # noqa: E402 (after the path is set)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], __doc__))
