"""Paths, names and sizes shared by the storefront API benchmark's modules; its log line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
ROOT = BENCH_DIR.parent
ENTRY_POINT = BENCH_DIR / "api_bench.py"  # also runs the internal steps in child processes
WRK_DIR = BENCH_DIR / "wrk"
RESULTS_DIR = BENCH_DIR / "results"
GUNICORN_CONF = ROOT / "config" / "gunicorn.conf.py"

MERCHANT_SLUG = "bench-api"
STOREFRONT_NAME = "Bench storefront"
REDEEM_SKU = "BENCH-REDEEM"
COVERED_SKU = "BENCH-COVERED"  # a partner agreement prices its redemptions
FLASH_SKU = "BENCH-FLASH-{}"
INVENTORY_SKU = "BENCH-INVENTORY"
FILLER_SKU = "BENCH-FILLER"
BASELINE_ROWS = 1_000
FLASH_CODES = 1_000
FLASH_ATTEMPTS = 5_000
ISSUE_CHUNK = 100
PREP_CUSTOMER = "bench-prep"


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)
