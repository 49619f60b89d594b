"""Benchmark: closing one settlement statement over N ledger entries on PostgreSQL, and
streaming its CSV.

    python bench/settlement_bench.py --entries 1000000

1. Creates a scratch database (dropped first if it exists) on the server given by
   --host/--port/--user, migrates it, and creates one merchant, partner, product and
   monthly agreement.
2. Inserts N ledger entries of one month with one INSERT ... SELECT generate_series
   (the append-only triggers refuse UPDATE/DELETE, not INSERT). Their hashes are not a
   real chain: closing does not re-verify the chain, so this does not change the cost.
3. In a child process: `close_statements --as-of <month end>` (wall time, the peak RSS
   of that process from getrusage, and the seconds of each step as the close logs
   them: insert lines, document, sign and store, commit), then, in another child,
   streaming the statement's CSV (`partners.csvexport.csv_rows` over the lines) to
   /dev/null.
4. Prints the figures as JSON (and writes them under bench/results/, git-ignored).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MONTH_START = datetime(2026, 1, 1, tzinfo=UTC)
MONTH_END = datetime(2026, 2, 1, tzinfo=UTC)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--user", default="postgres")
    parser.add_argument("--database", default="settlement_bench")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch database afterwards.")
    parser.add_argument("--child", choices=["close", "csv"], help=argparse.SUPPRESS)
    return parser.parse_args()


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def child(mode: str) -> None:
    setup_django()
    from partners.csvexport import csv_rows
    from partners.models import Statement
    from partners.services import statements

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    if mode == "close":
        stages = {}

        class Stages(logging.Handler):  # the close logs the seconds of each of its steps
            def emit(self, record):
                if getattr(record, "stages", None) and record.stages.get("insert lines") is not None:
                    stages.update({k: round(v, 2) for k, v in record.stages.items()})

        close_logger = logging.getLogger("partners.statements")
        close_logger.setLevel(logging.INFO)
        close_logger.addHandler(Stages())
        created = statements.close_statements(as_of=MONTH_END)
        result = {
            "statements": len(created),
            "line_count": created[0].line_count if created else 0,
            "stages_seconds": stages,
        }
    else:
        statement = Statement.objects.defer("document").get()
        size = rows = 0
        with open(os.devnull, "w") as sink:
            for chunk in csv_rows(statements.iter_lines(statement)):
                sink.write(chunk)
                size += len(chunk)
                rows += 1
        result = {"csv_rows": rows - 1, "csv_bytes": size}
    result.update(
        seconds=round(time.perf_counter() - started, 2),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        rss_before_mb=round(rss_before / 1024, 1),
    )
    print(json.dumps(result))


def main() -> None:
    args = parse_args()
    if args.child:
        child(args.child)
        return
    db_url = f"postgres://{args.user}@{args.host}:{args.port}/{args.database}"
    # DEBUG off as in production: Django's debug cursor would keep the SQL with the document in it.
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "DB_CONN_MAX_AGE": "0",
        "LOG_LEVEL": "WARNING",
        "DJANGO_DEBUG": "false",
    }
    env.pop("REDIS_URL", None)
    psql = [
        "psql",
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        args.host,
        "-p",
        str(args.port),
        "-U",
        args.user,
    ]
    subprocess.run([*psql, "-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {args.database}"], check=True)
    subprocess.run([*psql, "-d", "postgres", "-c", f"CREATE DATABASE {args.database}"], check=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    os.environ.update(env)
    setup_django()
    from django.db import connection

    from partners.models import Agreement, Partner
    from partners.services.agreements import add_version
    from vouchers.models import Merchant, Product

    merchant = Merchant.objects.create(name="Bench", slug="bench")
    partner = Partner.objects.create(name="Bench partner", slug="bench-partner")
    product = Product.objects.create(
        merchant=merchant, sku="BENCH", name="Bench", face_value=50, currency="USD"
    )
    agreement = Agreement.objects.create(
        merchant=merchant, partner=partner, currency="USD", period="monthly", timezone="UTC"
    )
    version = add_version(
        agreement=agreement,
        products=[product],
        basis="redeemed",
        direction="merchant_pays_partner",
        valid_from=MONTH_START,
        rate_bps=250,
    )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO partners_ledgerentry (partner_id, merchant_id, agreement_id, agreement_version_id,
                seq, kind, currency, amount_minor, source_type, source_id, source_key, sku, code_last4, memo,
                actor,
                occurred_at, recorded_at, prev_hash, hash)
            SELECT %(partner)s, %(merchant)s, %(agreement)s, %(version)s, g, 'accrual', 'USD', 125,
                   'redemption', md5(g::text), 'redemption:' || md5(g::text) || ':v' || %(version)s, 'BENCH',
                   lpad((g %% 10000)::text, 4, '0'), '', 'bench',
                   %(start)s::timestamptz + (g * interval '2 seconds'), now(),
                   md5((g - 1)::text) || md5((g - 1)::text), md5(g::text) || md5(g::text)
            FROM generate_series(1, %(n)s) AS g
            """,
            {
                "partner": partner.pk,
                "merchant": merchant.pk,
                "agreement": agreement.pk,
                "version": version.pk,
                "start": MONTH_START,
                "n": args.entries,
            },
        )
        cursor.execute("ANALYZE partners_ledgerentry")
    generated = round(time.perf_counter() - started, 1)
    connection.close()
    results = {"entries": args.entries, "generate_seconds": generated}
    for mode in ("close", "csv"):
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results[mode] = json.loads(out.strip().splitlines()[-1])
        print(mode, results[mode], flush=True)
    results["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"settlement-{args.entries}.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    if not args.keep:
        subprocess.run(
            [*psql, "-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {args.database}"], check=True
        )


if __name__ == "__main__":
    main()
