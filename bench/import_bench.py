"""Benchmark: `manage.py import_codes` of N generated codes into PostgreSQL, against `psql \\copy`.

    python bench/import_bench.py --rows 1000000 --runs 3

What it does:

1. Creates a scratch database (dropped first if it exists) on the PostgreSQL server
   given by --host/--port/--user, migrates it and creates one merchant and product.
2. Writes, into a temporary directory (never into the repository), a CSV of N random
   codes made with `vouchers.codeformat.CodeFormat` (grouped, e.g. XXXX-XXXX-...), and
   the baseline file: the same codes already sealed (ciphertext, nonce, key id, blind
   index, tail, state...) as a CSV that `\\copy` loads as is.
3. Each run, in alternating order: (a) the baseline, `psql -c "\\copy ..."` into a
   fresh table created with `(LIKE vouchers_code INCLUDING ALL)` (same columns, unique
   index on the blind index and every other index); (b) `manage.py import_codes` into
   an emptied codes table. Both are timed as subprocesses under /usr/bin/time
   (wall time, peak RSS of that process). A CHECKPOINT precedes each.
4. Prints per-run figures, the medians and the ratio import/baseline, and writes them
   as JSON under bench/results/ (git-ignored); paste the Markdown table into BENCHMARKS.md.

Needs: PostgreSQL reachable without a password prompt, psql, GNU time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKU = "BENCH-IMPORT"
COLUMNS = ("batch_id", "ciphertext", "nonce", "key_id", "blind_index", "last4", "serial",
           "expires_at", "state", "state_changed_at", "is_canary")


def main() -> None:
    args = parse_args()
    db_url = f"postgres://{args.user}@{args.host}:{args.port}/{args.database}"
    env = {**os.environ, "DATABASE_URL": db_url, "DB_CONN_MAX_AGE": "0", "LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", args.host, "-p", str(args.port),
            "-U", args.user]

    print(f"creating database {args.database} ...", flush=True)
    subprocess.run([*psql, "-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {args.database}"], check=True)
    subprocess.run([*psql, "-d", "postgres", "-c", f"CREATE DATABASE {args.database}"], check=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)

    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from vouchers.models import Batch, Merchant, Product

    merchant = Merchant.objects.create(name="Bench merchant", slug="bench-import")
    product = Product.objects.create(
        merchant=merchant, sku=SKU, name="Bench card", face_value=10, currency="USD"
    )
    seal_batch = Batch.objects.create(product=product, source=Batch.Source.IMPORTED)

    with tempfile.TemporaryDirectory(prefix="import-bench-") as tmp:
        codes_file = Path(tmp) / "codes.csv"
        sealed_file = Path(tmp) / f"sealed.{'bin' if args.baseline_format == 'binary' else 'csv'}"
        started = time.perf_counter()
        write_files(args.rows, codes_file, sealed_file, batch_id=seal_batch.pk, fmt=args.baseline_format)
        sizes = f"{codes_file.stat().st_size / 1e6:.0f} MB, {sealed_file.stat().st_size / 1e6:.0f} MB"
        print(f"wrote {args.rows:,} codes and their sealed rows in {time.perf_counter() - started:.1f} s "
              f"({sizes})", flush=True)
        from django.db import connection

        connection.close()

        runs = []
        for run in range(1, args.runs + 1):
            order = ("baseline", "import") if run % 2 else ("import", "baseline")
            figures = {}
            for which in order:
                if which == "baseline":
                    figures[which] = run_baseline(psql, args.database, sealed_file, tmp, args.baseline_format)
                else:
                    figures[which] = run_import(psql, args.database, codes_file, env, tmp, args.rows)
            figures["ratio"] = figures["import"]["wall_s"] / figures["baseline"]["wall_s"]
            figures["load_avg_1m"] = round(os.getloadavg()[0], 1)  # others' work on the shared machine
            runs.append(figures)
            imp, base = figures["import"], figures["baseline"]
            print(f"run {run}: import {imp['wall_s']:.1f} s / {imp['peak_mb']:.0f} MB, "
                  f"baseline {base['wall_s']:.1f} s, ratio {figures['ratio']:.2f}, "
                  f"load average {figures['load_avg_1m']}", flush=True)

    if not args.keep_db:
        drop = f"DROP DATABASE IF EXISTS {args.database}"
        subprocess.run([*psql, "-d", "postgres", "-c", drop], check=True)
    report(args, runs)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--user", default="postgres")
    parser.add_argument("--database", default="vouchers_bench_import")
    parser.add_argument("--keep-db", action="store_true", help="Leave the scratch database behind.")
    parser.add_argument(
        "--baseline-format", choices=["binary", "csv"], default="binary",
        help="File format of the baseline's \\copy (binary is the faster, stricter baseline).",
    )
    args = parser.parse_args()
    if not 1 <= args.rows <= 20_000_000 or not 1 <= args.runs <= 20:
        parser.error("--rows must be 1..20,000,000 and --runs 1..20")
    return args


def write_files(rows: int, codes_file: Path, sealed_file: Path, *, batch_id: int, fmt: str) -> None:
    """The supplier's file, and the same codes sealed for the baseline (written once, not timed)."""
    from vouchers.codeformat import CodeFormat, normalise
    from vouchers.services.code_writer import BatchSealer, display_tail

    code_format = CodeFormat(group=4)
    sealer = BatchSealer(batch_id=batch_id)
    now = datetime.now(UTC)
    write_row = _binary_writer(now) if fmt == "binary" else _csv_writer(now)
    with open(codes_file, "w", encoding="utf-8", newline="") as plain, open(sealed_file, "wb") as sealed:
        plain.write("code\n")
        if fmt == "binary":
            sealed.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0))
        for _ in range(rows):
            display = code_format.display(code_format.random_body())
            plain.write(display + "\n")
            normalised = normalise(display, case_sensitive=False)
            index = sealer.blind_index(normalised)
            ciphertext, nonce = sealer.seal(display, index)
            tail = display_tail(normalised)
            sealed.write(write_row(batch_id, ciphertext, nonce, sealer.key_id, index, tail))
        if fmt == "binary":
            sealed.write(struct.pack("!h", -1))


def _binary_writer(now: datetime):
    """Rows in PostgreSQL's binary COPY format, columns as COLUMNS (serial, expiry NULL)."""
    null = struct.pack("!i", -1)
    micros = int((now - datetime(2000, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000)
    tail = (
        struct.pack("!i", 9) + b"available" + struct.pack("!iq", 8, micros) + struct.pack("!i", 1) + b"\x00"
    )

    def field(value: bytes) -> bytes:
        return struct.pack("!i", len(value)) + value

    def write_row(batch_id, ciphertext, nonce, key_id, index, last4) -> bytes:
        return b"".join((
            struct.pack("!hiq", len(COLUMNS), 8, batch_id), field(ciphertext), field(nonce),
            field(key_id.encode()), field(index), field(last4.encode()), null, null, tail,
        ))

    return write_row


def _csv_writer(now: datetime):
    stamp = now.isoformat()

    def write_row(batch_id, ciphertext, nonce, key_id, index, last4) -> bytes:
        return (
            f"{batch_id},\\x{ciphertext.hex()},\\x{nonce.hex()},{key_id},\\x{index.hex()},{last4},,,"
            f"available,{stamp},f\n"
        ).encode()

    return write_row


def timed(command: list[str], *, env: dict | None = None, tmp: str) -> dict:
    """Wall time and peak RSS of one subprocess, measured by GNU time."""
    out = Path(tmp) / "time.txt"
    started = time.perf_counter()
    subprocess.run(
        ["/usr/bin/time", "-o", str(out), "-f", "%e %M %U %S", *command], cwd=ROOT, env=env, check=True,
        stdout=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - started
    wall, max_rss_kb, user, system = out.read_text().split()[-4:]
    return {
        "wall_s": round(float(wall) or elapsed, 2), "peak_mb": round(int(max_rss_kb) / 1024, 1),
        "client_cpu_s": round(float(user) + float(system), 2),  # the server's work is not in it
    }


def run_baseline(psql: list[str], database: str, sealed_file: Path, tmp: str, fmt: str) -> dict:
    subprocess.run([*psql, "-d", database, "-c",
                    "DROP TABLE IF EXISTS baseline_code; "
                    "CREATE TABLE baseline_code (LIKE vouchers_code INCLUDING ALL); CHECKPOINT"], check=True)
    figures = timed([*psql, "-d", database, "-c",
                     f"\\copy baseline_code ({', '.join(COLUMNS)}) FROM '{sealed_file}' WITH (FORMAT {fmt})"],
                    tmp=tmp)
    subprocess.run([*psql, "-d", database, "-c", "DROP TABLE baseline_code"], check=True)
    return figures


def run_import(psql: list[str], database: str, codes_file: Path, env: dict, tmp: str, rows: int) -> dict:
    subprocess.run([*psql, "-d", database, "-c",
                    "TRUNCATE vouchers_codeevent, vouchers_stockcounter, vouchers_code, vouchers_batch "
                    "CASCADE; CHECKPOINT"], check=True, stderr=subprocess.DEVNULL)
    figures = timed([sys.executable, "manage.py", "import_codes", "--product", SKU, "--no-progress",
                     str(codes_file)], env=env, tmp=tmp)
    count = subprocess.run([*psql, "-d", database, "-At", "-c", "SELECT count(*) FROM vouchers_code"],
                           check=True, capture_output=True, text=True).stdout.strip()
    if int(count) != rows:
        raise SystemExit(f"import stored {count} codes, expected {rows}")
    return figures


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    server = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_gib, 1),
            "python": platform.python_version(), "psql": server, "os": platform.platform()}


def report(args: argparse.Namespace, runs: list[dict]) -> None:
    med = {
        which: {k: statistics.median(r[which][k] for r in runs) for k in ("wall_s", "peak_mb")}
        for which in ("import", "baseline")
    }
    ratio = med["import"]["wall_s"] / med["baseline"]["wall_s"]
    paired = statistics.median(r["ratio"] for r in runs)  # each run's pair ran back to back
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "rows": args.rows, "runs": runs,
        "median": med, "ratio_of_medians": round(ratio, 2),
        "median_of_run_ratios": round(paired, 2), "machine": machine(),
        "baseline_format": args.baseline_format,
        "command": f"python bench/import_bench.py --rows {args.rows} --runs {args.runs}",
    }
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"import-{args.rows}-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"\nresults written to {out.relative_to(ROOT)}\n")
    print("| | wall time (median) | peak RSS (median) |")
    print("| --- | ---: | ---: |")
    imp, base = med["import"], med["baseline"]
    print(f"| `manage.py import_codes` | {imp['wall_s']:.1f} s | {imp['peak_mb']:.0f} MB |")
    label = f"baseline `psql \\copy` ({args.baseline_format})"
    print(f"| {label} | {base['wall_s']:.1f} s | {base['peak_mb']:.0f} MB |")
    print(f"| ratio import / baseline (of the medians) | {ratio:.2f} | |")
    print(f"| ratio import / baseline (median of each run's ratio) | {paired:.2f} | |")
    print("\nper run (import s, baseline s, ratio, load average): " + "; ".join(
        f"{r['import']['wall_s']:.1f}, {r['baseline']['wall_s']:.1f}, {r['ratio']:.2f}, {r['load_avg_1m']}"
        for r in runs))


if __name__ == "__main__":
    main()
