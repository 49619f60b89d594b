"""The command line of bench/api_bench.py: the whole run, or one internal step in a child process."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.api.checks import step_count_ledger, step_verify_flash
from bench.api.common import FLASH_ATTEMPTS, RESULTS_DIR, ROOT
from bench.api.data import setup_django, step_fill, step_issue, step_prepare
from bench.api.profile import step_cpu_profile
from bench.api.report import print_report, summarise
from bench.api.scenarios import Bench
from bench.api.server import bench_env
from bench.api.timings import step_auth_cost, step_db_timings


def run(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        print("wrk is not installed. On Debian/Ubuntu: sudo apt-get install -y wrk", file=sys.stderr)
        return 2
    if not args.database.startswith("vouchers_bench"):
        print("--database must start with vouchers_bench", file=sys.stderr)
        return 2
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="api-bench-"))
    os.chmod(tmp, 0o700)
    bench = Bench(args=args, tmp=tmp, env=bench_env(args))
    import gunicorn

    bench.results.update({
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "gunicorn": f"{gunicorn.__version__} {args.worker_class} workers={args.workers or 'default'} "
                    f"threads={args.threads or 'default'}",
        "args": {k: v for k, v in vars(args).items() if k not in ("func",)},
    })
    try:
        bench.flush_redis()
        if args.only & {"baseline", "redeem", "flash", "auth", "covered"}:
            bench.main_phase()
        if "inventory" in args.only:
            bench.inventory_phase()
    finally:
        bench.stop_gunicorn()
        if bench.gunicorn_log and bench.gunicorn_log.exists():
            errors = [line for line in bench.gunicorn_log.read_text().splitlines()
                      if "Traceback" in line or " ERROR " in line or "CRITICAL" in line]
            bench.results["gunicorn_errors"] = len(errors)
        if not args.keep:
            for name in (args.database, f"{args.database}_inventory"):
                bench.drop_database(name)
            bench.flush_redis()
        RESULTS_DIR.mkdir(exist_ok=True)
        for gunicorn_log in tmp.glob("gunicorn-*.log"):
            shutil.copy(gunicorn_log, RESULTS_DIR / gunicorn_log.name)
        shutil.rmtree(tmp, ignore_errors=True)
    bench.results["elapsed_s"] = time.monotonic() - started
    med = summarise(bench.results)
    bench.results["medians"] = med
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"api-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(bench.results, indent=2, default=str))
    print_report(args, bench.results, med)
    print(f"\nfull results: {out.relative_to(ROOT)}; total {bench.results['elapsed_s'] / 60:.1f} min")
    return 0


STEPS = {
    "prepare": step_prepare, "issue": step_issue, "verify-flash": step_verify_flash,
    "fill": step_fill, "auth-cost": step_auth_cost, "cpu-profile": step_cpu_profile,
    "db-timings": step_db_timings, "count-ledger": step_count_ledger,
}


def parse_args(argv: list[str], description: str | None = None) -> argparse.Namespace:
    if argv and argv[0] in STEPS:
        parser = argparse.ArgumentParser(prog=f"api_bench.py {argv[0]}")
        parser.add_argument("--out", required=True)
        parser.add_argument("--flash-products", type=int, default=0)
        parser.add_argument("--inventory", type=int, default=0)
        parser.add_argument("--sku", default="")
        parser.add_argument("--count", type=int, default=0)
        parser.add_argument("--codes-file", default="")
        parser.add_argument("--generate", action="store_true")
        parser.add_argument("--covered", action="store_true")
        parser.add_argument("--label", default="")
        parser.add_argument("--attempts", type=int, default=FLASH_ATTEMPTS)
        parser.add_argument("--total", type=int, default=0)
        parser.add_argument("--calls", type=int, default=5000)
        args = parser.parse_args(argv[1:])
        args.step = argv[0]
        return args
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true",
                        help="short runs (5 s), 10^6 codes for the inventory test, fewer sequential requests")
    parser.add_argument("--keep", action="store_true", help="keep the bench databases")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=None, help="seconds per wrk run (default 10)")
    parser.add_argument("--only", default="baseline,redeem,flash,auth,inventory",
                        help="comma-separated scenarios: baseline,redeem,flash,auth,inventory,covered "
                        "(covered: redemption with a covering agreement against without, not run by default)")
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6"))
    parser.add_argument("--database", default="vouchers_bench")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--worker-class", default="gthread", choices=["gthread", "sync"])
    parser.add_argument("--workers", type=int, default=0, help="default: the gunicorn config's")
    parser.add_argument("--threads", type=int, default=0, help="default: the gunicorn config's")
    parser.add_argument("--wrk-threads", type=int, default=1,
                        help="wrk threads (default 1: a few percent of one core at these rates)")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds of quiet before each wrk run (queued requests finish)")
    parser.add_argument("--sequential", type=int, default=None,
                        help="requests per sequential run (default 200, quick 100)")
    parser.add_argument("--inventory-small", type=int, default=10_000)
    parser.add_argument("--inventory-large", type=int, default=None, help="default 10^7 (quick 10^6)")
    parser.add_argument("--auth-calls", type=int, default=5000)
    parser.add_argument("--profile", action="store_true",
                        help="an extra unmeasured round with py-spy on gunicorn (stacks in bench/results/)")
    args = parser.parse_args(argv)
    args.step = "run"
    args.only = set(filter(None, args.only.split(",")))
    args.duration = args.duration or (5 if args.quick else 10)
    args.sequential = args.sequential or (100 if args.quick else 200)
    args.inventory_large = args.inventory_large or (10**6 if args.quick else 10**7)
    return args


def main(argv: list[str], description: str | None = None) -> int:
    args = parse_args(argv, description)
    if args.step == "run":
        return run(args)
    setup_django()
    result = STEPS[args.step](args)
    Path(args.out).write_text(json.dumps(result, default=str))
    return 0
