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

import argparse
import base64
import http.client
import json
import math
import os
import platform
import queue
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRK_DIR = Path(__file__).resolve().parent / "wrk"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
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

GOALS = {"redeem": 0.50, "flash": 0.40, "inventory": 1.25}


# --------------------------------------------------------------------------------------
# Orchestrator (no Django in this process)
# --------------------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    tmp: Path
    env: dict[str, str]
    results: dict = field(default_factory=dict)
    gunicorn: subprocess.Popen | None = None
    gunicorn_log: Path | None = None

    # --- environment and databases ----------------------------------------------------

    def db_url(self, name: str) -> str:
        return f"{self.args.pg.rstrip('/')}/{name}"

    def child(self, *argv: str, database: str, timeout: float, api_key: str = "") -> dict:
        """Run an internal step in a child process with the bench environment; its JSON."""
        env = {**self.env, "DATABASE_URL": self.db_url(database)}
        if api_key:
            env["BENCH_API_KEY"] = api_key
        out = self.tmp / f"child-{secrets.token_hex(4)}.json"
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), *argv, "--out", str(out)],
            cwd=ROOT, env=env, timeout=timeout, capture_output=True, text=True,
        )
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
            raise RuntimeError(f"step {argv[0]} failed with exit code {proc.returncode}")
        return json.loads(out.read_text())

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.db_url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.db_url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def flush_redis(self) -> None:
        import redis

        redis.Redis.from_url(self.args.redis, socket_timeout=5).flushdb()

    # --- gunicorn ---------------------------------------------------------------------

    def start_gunicorn(self, database: str) -> None:
        a = self.args
        env = {
            **self.env, "DATABASE_URL": self.db_url(database),
            "GUNICORN_BIND": f"127.0.0.1:{a.port}", "GUNICORN_WORKER_CLASS": a.worker_class,
        }
        if a.workers:
            env["GUNICORN_WORKERS"] = str(a.workers)
        if a.threads:
            env["GUNICORN_THREADS"] = str(a.threads)
        self.gunicorn_log = self.tmp / f"gunicorn-{database}.log"
        log = self.gunicorn_log.open("ab")
        self.gunicorn = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.gunicorn.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.gunicorn_log.read_text()[-3000:]}")
            try:
                status, _ = self.http_once("POST", "/bench/baseline/", {"id": 1})
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError("gunicorn did not answer within 60 s")

    def stop_gunicorn(self) -> None:
        proc, self.gunicorn = self.gunicorn, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)  # our own session: the master and its workers
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def http_once(self, method: str, path: str, body: dict, headers: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.args.port, timeout=10)
        try:
            conn.request(method, path, json.dumps(body),
                         {"Content-Type": "application/json", **(headers or {})})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    # --- CPU accounting ---------------------------------------------------------------

    def cpu_snapshot(self, database: str) -> dict:
        """CPU seconds so far of gunicorn (master, workers, reaped workers), of the
        PostgreSQL backends connected to our database, and of the Redis server."""
        import psycopg
        import redis

        snap: dict = {"gunicorn": 0.0, "postgres": {}, "redis": 0.0}
        if self.gunicorn is not None:
            master = self.gunicorn.pid
            snap["gunicorn"] = proc_cpu_seconds(master, with_children=True) + sum(
                proc_cpu_seconds(pid) for pid in child_pids(master)
            )
        with psycopg.connect(self.db_url(database), autocommit=True) as conn:
            pids = [row[0] for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [database],
            )]
        snap["postgres"] = {pid: proc_cpu_seconds(pid) for pid in pids}
        try:
            info = redis.Redis.from_url(self.args.redis, socket_timeout=5).info("server")
            snap["redis"] = proc_cpu_seconds(int(info["process_id"]))
        except Exception:  # noqa: BLE001 (CPU accounting is best effort)
            snap["redis"] = 0.0
        return snap

    @staticmethod
    def cpu_per_request(before: dict, after: dict, requests: int) -> dict:
        """Milliseconds of CPU per request. PostgreSQL counts backends present at the end
        (a backend that started during the run counts whole); one that ended is missed."""
        if not requests:
            return {}
        postgres = sum(cpu - before["postgres"].get(pid, 0.0) for pid, cpu in after["postgres"].items())
        return {
            "gunicorn": 1000 * (after["gunicorn"] - before["gunicorn"]) / requests,
            "postgres": 1000 * postgres / requests,
            "redis": 1000 * (after["redis"] - before["redis"]) / requests,
        }

    def settle(self) -> None:
        """Let requests still queued in gunicorn from the previous run finish."""
        time.sleep(self.args.settle)

    # --- wrk --------------------------------------------------------------------------

    def wrk(self, script: str, *, connections: int, duration: int, script_args: list[str],
            quota_total: int = 0, database: str | None = None) -> dict:
        """Run wrk with a Lua script; its summary (see bench/wrk/common.lua).

        With quota_total, each thread sends exactly its share and wrk is ended (SIGINT)
        as soon as every thread has all its responses; `duration` is then only a bound.
        """
        threads = min(self.args.wrk_threads, connections)
        quota = 0
        if quota_total:
            if quota_total % threads:
                raise ValueError("the request count must divide evenly among wrk threads")
            quota = quota_total // threads
        cmd = [
            "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s",
            "--timeout", "30s", "-s", str(WRK_DIR / script), f"http://127.0.0.1:{self.args.port}",
            "--", str(threads), str(quota), *script_args,
        ]
        env = {**os.environ, "BENCH_WRK_DIR": str(WRK_DIR)}
        self.settle()
        cpu_before = self.cpu_snapshot(database) if database else None
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            for line in proc.stdout:  # type: ignore[union-attr]
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        summary = None
        sent_threads = done_threads = 0
        deadline = time.monotonic() + duration + 60
        interrupted = False
        try:
            while time.monotonic() < deadline:
                try:
                    line = lines.get(timeout=0.5)
                except queue.Empty:
                    continue
                if line is None:
                    break
                if line.startswith("WRKSENT"):
                    sent_threads += 1
                    if sent_threads == threads:  # all sent: wait for answers, bounded
                        deadline = min(deadline, time.monotonic() + 40)
                elif line.startswith("WRKDONE"):
                    done_threads += 1
                elif line.startswith("WRKJSON "):
                    summary = json.loads(line[len("WRKJSON "):])
                if quota and not interrupted and done_threads == threads:
                    proc.send_signal(signal.SIGINT)
                    interrupted = True
            if summary is None and proc.poll() is None and quota and not interrupted:
                proc.send_signal(signal.SIGINT)  # stragglers never answered: end it, keep the summary
                while (line := lines.get(timeout=30)) is not None:
                    if line.startswith("WRKJSON "):
                        summary = json.loads(line[len("WRKJSON "):])
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if summary is None:
            raise RuntimeError(f"wrk gave no summary: {proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        if cpu_before is not None:
            summary["cpu_ms_per_request"] = self.cpu_per_request(
                cpu_before, self.cpu_snapshot(database), int(summary["received"])
            )
        summary["connections"] = connections
        summary["threads"] = threads
        if quota:
            summary["rps"] = summary["received"] / summary["wall_s"] if summary["wall_s"] else 0.0
        else:
            summary["rps"] = summary["wrk_requests"] / summary["wrk_duration_s"]
        summary["non_2xx_or_409"] = sum(
            n for status, n in summary["statuses"].items() if not (status.startswith("2") or status == "409")
        )
        summary["5xx"] = sum(n for status, n in summary["statuses"].items() if status.startswith("5"))
        socket_errors = sum(summary["errors"][k] for k in ("connect", "read", "write", "timeout"))
        summary["socket_errors"] = socket_errors
        return summary

    # --- sequential client ------------------------------------------------------------

    def sequential(self, requests: list[tuple[str, str, dict, dict]]) -> dict:
        """Send requests one after another on one keep-alive connection; latency figures."""
        conn = http.client.HTTPConnection("127.0.0.1", self.args.port, timeout=30)
        latencies: list[float] = []
        statuses: dict[str, int] = {}
        try:
            for method, path, body, headers in requests:
                payload = json.dumps(body)
                started = time.perf_counter()
                conn.request(method, path, payload, {"Content-Type": "application/json", **headers})
                response = conn.getresponse()
                response.read()
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
        finally:
            conn.close()
        return {"n": len(latencies), "p50_ms": percentile(latencies, 50),
                "p90_ms": percentile(latencies, 90), "p99_ms": percentile(latencies, 99),
                "statuses": statuses}

    # --- scenarios --------------------------------------------------------------------

    def issue_codes_file(self, *, database: str, sku: str, count: int, name: str,
                         generate: bool = True) -> Path:
        path = self.tmp / f"{name}.codes"
        self.child("issue", "--sku", sku, "--count", str(count), "--codes-file", str(path),
                   *(["--generate"] if generate else []), database=database, timeout=900)
        return path

    def main_phase(self) -> None:
        a = self.args
        db = a.database
        self.create_database(db)
        log(f"database {db}: migrating and creating stock")
        flash_products = (a.runs + (1 if a.profile else 0)) if "flash" in a.only else 0
        prep = self.child("prepare", "--flash-products", str(flash_products),
                          *(["--covered"] if "covered" in a.only else []), database=db, timeout=900)
        key = prep["api_key"]
        self.start_gunicorn(db)
        log(f"gunicorn up ({a.worker_class}, workers={a.workers or 'default'}, "
            f"threads={a.threads or 'default'}) on port {a.port}")
        try:
            estimate = self.warm_up(db, key)
            rounds = []
            for run in range(1, a.runs + 1):
                rounds.append(self.round(db, key, run, estimate))
                measured = [r["redeem"][c]["rps"] for r in rounds if "redeem" in r for c in r["redeem"]]
                if measured:
                    estimate = max(measured)
            self.results["rounds"] = rounds
            if a.profile:
                self.results["profiles"] = self.profile_round(db, key, estimate)
            if "auth" in a.only:
                self.results["baseline_sequential"] = self.baseline_sequential()
        finally:
            self.stop_gunicorn()
        if "auth" in a.only:
            log("key checking cost, in-process")
            self.results["auth"] = self.child("auth-cost", "--calls", str(a.auth_calls),
                                              database=db, timeout=600)
        if a.profile:
            log("in-process CPU profile of issuance and redemption")
            self.results["cpu_profile"] = self.child("cpu-profile", "--count", str(a.sequential),
                                                     database=db, timeout=900, api_key=key)
            for kind, figures in self.results["cpu_profile"].items():
                log(f"  {kind}: {figures['sql_statements_per_request']:.1f} SQL statements, "
                    f"{figures['redis_round_trips_per_request']:.1f} Redis round trips per request; "
                    f"CPU shares {figures['cpu_share_pct']}; own time by package "
                    f"{figures['own_time_share_pct']}")

    def warm_up(self, db: str, key: str) -> float:
        """Warm every worker and return a first estimate of redemption throughput."""
        log("warm-up")
        self.wrk("baseline.lua", connections=16, duration=3, script_args=["warm", str(BASELINE_ROWS)])
        if "redeem" not in self.args.only:
            return 0.0
        codes = self.issue_codes_file(database=db, sku=REDEEM_SKU, count=2_000, name="warm")
        summary = self.wrk("redeem.lua", connections=16, duration=3,
                           script_args=["warm", str(codes), key])
        return summary["rps"]

    def round(self, db: str, key: str, run: int, estimate: float) -> dict:
        a = self.args
        result: dict = {"run": run}
        files = {}
        if "redeem" in a.only:
            per_run = int(max(estimate, 50) * a.duration * 1.6) + 500
            both = self.issue_codes_file(database=db, sku=REDEEM_SKU, count=per_run * 2,
                                         name=f"redeem-{run}")
            lines = both.read_text().splitlines()
            for i, connections in enumerate((16, 64)):
                path = self.tmp / f"redeem-{run}-{connections}.codes"
                path.write_text("\n".join(lines[i * per_run:(i + 1) * per_run]) + "\n")
                files[connections] = path
            both.unlink()
        for connections in (16, 64):
            if "baseline" in a.only:
                summary = self.wrk("baseline.lua", connections=connections, duration=a.duration,
                                   script_args=[f"b{run}", str(BASELINE_ROWS)], database=db)
                result.setdefault("baseline", {})[connections] = summary
                log(f"round {run} baseline  c={connections}: {fmt_summary(summary)}")
            if "redeem" in a.only:
                summary = self.wrk("redeem.lua", connections=connections, duration=a.duration,
                                   script_args=[f"r{run}c{connections}", str(files[connections]), key],
                                   database=db)
                files[connections].unlink()
                result.setdefault("redeem", {})[connections] = summary
                log(f"round {run} redeem    c={connections}: {fmt_summary(summary)}")
                if summary["exhausted"]:
                    log(f"  WARNING: {summary['exhausted']} wrk threads ran out of codes; run not valid")
        if "covered" in a.only:
            result["covered"] = self.covered_round(db, key, run, estimate)
        if "flash" in a.only:
            sku = FLASH_SKU.format(run)
            summary = self.wrk("issue.lua", connections=64, duration=300, quota_total=FLASH_ATTEMPTS,
                               script_args=[f"f{run}", sku, key], database=db)
            checks = self.child("verify-flash", "--sku", sku, "--label", f"f{run}",
                                "--attempts", str(FLASH_ATTEMPTS), database=db, timeout=300)
            summary["checks"] = checks
            summary["checks"]["no_5xx"] = summary["5xx"] == 0
            summary["checks"]["only_201_or_409"] = summary["non_2xx_or_409"] == 0
            summary["checks"]["all_answered"] = (
                summary["sent"] == FLASH_ATTEMPTS and summary["received"] == FLASH_ATTEMPTS
                and summary["socket_errors"] == 0
            )
            summary["checks"]["ok"] = all(v for k, v in summary["checks"].items() if isinstance(v, bool))
            result["flash"] = summary
            log(f"round {run} flash     c=64: {fmt_summary(summary)} "
                f"statuses={summary['statuses']} checks={'ok' if summary['checks']['ok'] else checks}")
        return result

    def covered_round(self, db: str, key: str, run: int, estimate: float) -> dict:
        """Redemption of a product no agreement covers, then of one a partner agreement
        covers (one ledger entry per redemption), back to back at 16 connections."""
        a = self.args
        count = int(max(estimate, 50) * a.duration * 1.6) + 500
        result = {}
        for label, sku in (("uncovered", REDEEM_SKU), ("covered", COVERED_SKU)):
            path = self.issue_codes_file(database=db, sku=sku, count=count, name=f"{label}-{run}")
            summary = self.wrk("redeem.lua", connections=16, duration=a.duration,
                               script_args=[f"{label[:3]}{run}", str(path), key], database=db)
            path.unlink()
            result[label] = summary
            log(f"round {run} {label:<9} c=16: {fmt_summary(summary)}")
            if summary["exhausted"]:
                log(f"  WARNING: {summary['exhausted']} wrk threads ran out of codes; run not valid")
        result["ledger"] = self.child("count-ledger", database=db, timeout=120)
        return result

    def profile_round(self, db: str, key: str, estimate: float) -> dict:
        """An extra, unmeasured round with py-spy attached to gunicorn (master and workers).

        py-spy samples, 100 times a second, the stacks of threads holding the GIL, that
        is Python running on a CPU (a thread waiting for PostgreSQL or Redis has released
        it). The raw stacks go to bench/results/ and a summary into the results.
        """
        if shutil.which("py-spy") is None:
            log("py-spy not found (pip install py-spy): no profile")
            return {}
        RESULTS_DIR.mkdir(exist_ok=True)
        profiles = {}
        scenarios = []
        if "redeem" in self.args.only:
            count = int(max(estimate, 50) * self.args.duration * 1.6) + 500
            codes = self.issue_codes_file(database=db, sku=REDEEM_SKU, count=count, name="profile")
            scenarios.append(("redeem-c64", "redeem.lua", 64, 0, ["p-r", str(codes), key]))
        if "baseline" in self.args.only:
            scenarios.append(("baseline-c64", "baseline.lua", 64, 0, ["p-b", str(BASELINE_ROWS)]))
        if "flash" in self.args.only:
            sku = FLASH_SKU.format(self.args.runs + 1)
            scenarios.append(("flash-c64", "issue.lua", 64, FLASH_ATTEMPTS, ["p-f", sku, key]))
        for name, script, connections, quota_total, script_args in scenarios:
            out = RESULTS_DIR / f"pyspy-{name}.txt"
            spy = subprocess.Popen(
                ["py-spy", "record", "--pid", str(self.gunicorn.pid), "--subprocesses", "--rate", "100",
                 "--gil", "--format", "raw", "--output", str(out), "--duration", "600"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
            try:
                summary = self.wrk(script, connections=connections,
                                   duration=self.args.duration if not quota_total else 300,
                                   quota_total=quota_total, script_args=script_args)
            finally:
                spy.send_signal(signal.SIGINT)
                try:
                    spy.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    spy.kill()
                    spy.wait()
            log(f"profiled {name}: {fmt_summary(summary)}")
            if out.exists():
                profiles[name] = summarise_stacks(out)
                profiles[name]["file"] = str(out.relative_to(ROOT))
        return profiles

    def baseline_sequential(self) -> dict:
        n = self.args.sequential
        runs = []
        for _ in range(self.args.runs):
            reqs = [("POST", "/bench/baseline/", {"id": 1 + i % BASELINE_ROWS}, {}) for i in range(n)]
            runs.append(self.sequential(reqs))
        log(f"baseline sequential p50 {statistics.median(r['p50_ms'] for r in runs):.2f} ms")
        return {"runs": runs, "p50_ms": statistics.median(r["p50_ms"] for r in runs)}

    def inventory_phase(self) -> None:
        a = self.args
        db = f"{a.database}_inventory"
        n, runs, warm = a.sequential, a.runs, 30
        per_size = warm + runs * n
        self.create_database(db)
        log(f"database {db}: {a.inventory_small:,} codes")
        prep = self.child("prepare", "--inventory", str(a.inventory_small), "--flash-products", "0",
                          database=db, timeout=900)
        key = prep["api_key"]
        codes = self.issue_codes_file(database=db, sku=INVENTORY_SKU, count=2 * per_size,
                                      name="inventory", generate=False)
        code_lines = codes.read_text().splitlines()
        sizes = {}
        for index, (label, stored) in enumerate((("small", a.inventory_small), ("large", a.inventory_large))):
            if label == "large":
                log(f"filling to {stored:,} codes (SQL, then ANALYZE)")
                started = time.monotonic()
                fill = self.child("fill", "--total", str(stored), database=db, timeout=3600)
                fill["seconds"] = time.monotonic() - started
                self.results["fill"] = fill
                log(f"filled in {fill['seconds']:.0f} s: {fill['codes']:,} codes stored")
            mine = iter(code_lines[index * per_size:(index + 1) * per_size])
            self.start_gunicorn(db)
            try:
                sizes[label] = self.inventory_size(key, stored, mine, label, n=n, runs=runs, warm=warm,
                                                   database=db)
            finally:
                self.stop_gunicorn()
        codes.unlink()
        self.results["inventory"] = sizes

    def inventory_size(self, key: str, stored: int, codes, label: str, *, n: int, runs: int,
                       warm: int, database: str) -> dict:
        headers = {"Authorization": f"Api-Key {key}"}

        def issue_requests(tag: str, count: int):
            return [("POST", "/api/v1/issuances/",
                     {"sku": INVENTORY_SKU, "quantity": 1, "customer": f"c-{tag}-{i}"},
                     {**headers, "Idempotency-Key": f"{label}-{tag}-{i}"}) for i in range(count)]

        def redeem_requests(tag: str, count: int):
            return [("POST", "/api/v1/redemptions/", {"code": next(codes)},
                     {**headers, "Idempotency-Key": f"{label}-{tag}-{i}"}) for i in range(count)]

        def baseline_requests(count: int):
            return [("POST", "/bench/baseline/", {"id": 1 + i % BASELINE_ROWS}, {}) for i in range(count)]

        self.sequential(issue_requests("warm-i", warm))
        self.sequential(redeem_requests("warm-r", warm))
        self.sequential(baseline_requests(warm))
        out: dict = {"stored": stored, "issue": [], "redeem": [], "baseline": []}
        for run in range(1, runs + 1):
            out["issue"].append(self.sequential(issue_requests(f"i{run}", n)))
            out["redeem"].append(self.sequential(redeem_requests(f"r{run}", n)))
            out["baseline"].append(self.sequential(baseline_requests(n)))
            log(f"inventory {stored:>11,} run {run}: issue p50 {out['issue'][-1]['p50_ms']:.2f} ms "
                f"{out['issue'][-1]['statuses']}, redeem p50 {out['redeem'][-1]['p50_ms']:.2f} ms "
                f"{out['redeem'][-1]['statuses']}, baseline p50 {out['baseline'][-1]['p50_ms']:.2f} ms")
        for kind in ("issue", "redeem", "baseline"):
            out[f"{kind}_p50_ms"] = statistics.median(r["p50_ms"] for r in out[kind])
        out["db_ms"] = self.child("db-timings", "--count", "200", database=database, timeout=600)
        log(f"inventory {stored:>11,} server-side execution (median ms): {out['db_ms']}")
        return out


# Where the on-CPU time of a request goes: the first matching frame, from the leaf up,
# names the bucket (so time in psycopg under the ORM under a service counts as the
# database driver, and the rest of a service's own Python counts as that service).
STACK_BUCKETS = (
    ("database driver (psycopg, socket I/O)", ("psycopg/", "psycopg_binary")),
    ("Redis client (rate limits, fraud counters)", ("redis/", "django_redis/")),
    ("logging", ("logging/__init__.py",)),
    ("crypto (AES-GCM, HMAC, SHA-512)", ("cryptography/", "hmac.py", "hashlib")),
    ("JSON", ("json/",)),
    ("Django ORM (query building, SQL compiler, model init)", ("django/db/",)),
    ("DRF (request, serializers, renderers)", ("rest_framework/",)),
    ("Django (handlers, middleware, urls, http)", ("django/",)),
    ("gunicorn (HTTP parsing, workers)", ("gunicorn/",)),
    ("fraud checks (our code)", ("fraud/",)),
    ("vouchers services and API (our code)", ("vouchers/",)),
    ("bench baseline view", ("bench/baseline/",)),
)
# Inclusive time of these frames (function name, file fragment).
STACK_FOCUS = (
    ("authenticate", "vouchers/api/authentication.py"),
    ("limit_by_address", "vouchers/api/ratelimits.py"),
    ("limit_by_key", "vouchers/api/ratelimits.py"),
    ("claim", "vouchers/services/idempotency.py"),
    ("lock_for_run", "vouchers/services/idempotency.py"),
    ("complete", "vouchers/services/idempotency.py"),
    ("fingerprint", "vouchers/services/idempotency.py"),
    ("redeem_code", "vouchers/services/redemption.py"),
    ("issue_codes", "vouchers/services/issuance.py"),
    ("find_usable_code", "vouchers/services/attempts.py"),
    ("find_code", "vouchers/selectors.py"),
    ("assess", "fraud/services/assessment.py"),
    ("rules_for_merchant", "fraud/services/rules.py"),
    ("ensure_not_locked_out", "fraud/services/lockouts.py"),
    ("attach_assessment", "fraud/services/assessment.py"),
    ("record_moves", "vouchers/services/stock.py"),
    ("claim_codes", "vouchers/services/issuance.py"),
    ("move_codes", "vouchers/services/issuance.py"),
    ("available_by_product", "vouchers/selectors.py"),
    ("data", "rest_framework/serializers.py"),
    ("log_response", "django/utils/log.py"),
    ("close_if_unusable_or_obsolete", "django/db/backends/base/base.py"),
    ("post", "bench/baseline/views.py"),
)


def summarise_stacks(path: Path) -> dict:
    """Summarise py-spy raw output (`frame;frame;... count` per line, root first)."""
    total = 0
    buckets: dict[str, int] = {}
    focus: dict[str, int] = {}
    requests = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        in_request = any("handle_request" in f and "gunicorn" in f for f in frames)
        total += count
        if not in_request:
            buckets["outside requests (gunicorn loop, idle)"] = (
                buckets.get("outside requests (gunicorn loop, idle)", 0) + count
            )
            continue
        requests += count
        for frame in reversed(frames):
            bucket = next((name for name, marks in STACK_BUCKETS if any(m in frame for m in marks)), None)
            if bucket:
                buckets[bucket] = buckets.get(bucket, 0) + count
                break
        else:
            buckets["other (stdlib)"] = buckets.get("other (stdlib)", 0) + count
        seen = set()
        for frame in frames:
            for function, fragment in STACK_FOCUS:
                label = f"{fragment}:{function}"
                if label not in seen and frame.startswith(f"{function} (") and fragment in frame:
                    seen.add(label)
                    focus[label] = focus.get(label, 0) + count
    def ranked(counts: dict[str, int]) -> dict[str, float]:
        return {k: round(100 * v / requests, 1) if requests else 0.0
                for k, v in sorted(counts.items(), key=lambda kv: -kv[1]) if not k.startswith("outside")}

    return {
        "samples": total, "request_samples": requests,
        "buckets_pct_of_request_cpu": ranked(buckets),
        "inclusive_pct_of_request_cpu": ranked(focus),
    }


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """CPU time (user + system) of one process from /proc; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if with_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime (reaped workers)
    return ticks / CLOCK_TICKS


def child_pids(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(math.ceil(pct / 100 * len(ordered)) - 1, 0)
    return ordered[rank]


def fmt_summary(s: dict) -> str:
    lat = s["latency_ms"]
    cpu = s.get("cpu_ms_per_request") or {}
    cpu_text = (f"  cpu/req gunicorn {cpu['gunicorn']:.2f} ms, postgres {cpu['postgres']:.2f} ms, "
                f"redis {cpu['redis']:.2f} ms" if cpu else "")
    return (f"{s['rps']:7.1f} req/s  p50 {lat['p50']:7.2f} ms  p99 {lat['p99']:7.2f} ms  "
            f"non-2xx/409 {s['non_2xx_or_409']:.0f}  socket errors {s['socket_errors']:.0f}{cpu_text}")


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def bench_env(args: argparse.Namespace) -> dict[str, str]:
    """The environment of gunicorn and every child: fresh keys, high rate limits."""
    def key() -> str:
        return base64.b64encode(secrets.token_bytes(32)).decode()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "DJANGO_", "VOUCHER_"))}
    env.update({
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DJANGO_ENV": "development",
        "DJANGO_DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "VOUCHER_ENCRYPTION_KEYS": f"bench1:{key()}",
        "VOUCHER_PRIMARY_KEY_ID": "bench1",
        "VOUCHER_INDEX_KEY": key(),
        "REDIS_URL": args.redis,
        "API_RATE_PER_KEY": "10000000/m",
        "API_RATE_PER_ADDRESS": "10000000/m",
        # Persistent connections outlive a run, so the CPU of each PostgreSQL backend can
        # be read before and after it (the default, 60 s, would recycle some mid-run).
        "DB_CONN_MAX_AGE": "600",
        "PYTHONPATH": str(ROOT),
    })
    env.pop("CELERY_BROKER_URL", None)
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    return env


def summarise(results: dict) -> dict:
    """Medians over rounds and ratios against the baseline of the same round."""
    rounds = results.get("rounds", [])
    med: dict = {}

    def median_of(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    for scenario, conns in (("baseline", (16, 64)), ("redeem", (16, 64)), ("flash", (64,))):
        for c in conns:
            runs = [
                (r[scenario][c] if scenario != "flash" else r["flash"])
                for r in rounds if scenario in r
            ]
            if not runs:
                continue
            entry = {
                "rps": median_of(s["rps"] for s in runs),
                "p50_ms": median_of(s["latency_ms"]["p50"] for s in runs),
                "p99_ms": median_of(s["latency_ms"]["p99"] for s in runs),
                "runs_rps": [round(s["rps"], 1) for s in runs],
            }
            cpu = [s["cpu_ms_per_request"] for s in runs if s.get("cpu_ms_per_request")]
            if cpu:
                entry["cpu_ms_per_request"] = {
                    part: median_of(c[part] for c in cpu) for part in ("gunicorn", "postgres", "redis")
                }
            if "baseline" in rounds[0] and scenario != "baseline":
                ratios = [
                    (r["flash"] if scenario == "flash" else r[scenario][c])["rps"] / r["baseline"][c]["rps"]
                    for r in rounds if scenario in r
                ]
                entry["ratio"] = median_of(ratios)
                entry["ratios"] = [round(x, 3) for x in ratios]
            med[f"{scenario}_{c}"] = entry
    covered = [r["covered"] for r in rounds if "covered" in r]
    if covered:
        med["covered_16"] = {
            "rps": median_of(r["covered"]["rps"] for r in covered),
            "p50_ms": median_of(r["covered"]["latency_ms"]["p50"] for r in covered),
            "p99_ms": median_of(r["covered"]["latency_ms"]["p99"] for r in covered),
            "uncovered_rps": median_of(r["uncovered"]["rps"] for r in covered),
            "runs_rps": [round(r["covered"]["rps"], 1) for r in covered],
            # covered / uncovered in the same round (issue 7's goal: at most 10% loss)
            "ratio": median_of(r["covered"]["rps"] / r["uncovered"]["rps"] for r in covered),
            "ratios": [round(r["covered"]["rps"] / r["uncovered"]["rps"], 3) for r in covered],
            "ledger_entries": covered[-1]["ledger"],
        }
        for label in ("covered", "uncovered"):
            cpu = [r[label]["cpu_ms_per_request"] for r in covered if r[label].get("cpu_ms_per_request")]
            if cpu:
                med["covered_16"][f"{label}_cpu_ms_per_request"] = {
                    part: median_of(c[part] for c in cpu) for part in ("gunicorn", "postgres", "redis")
                }
    inventory = results.get("inventory")
    if inventory and "large" in inventory:
        for kind in ("issue", "redeem"):
            small, large = inventory["small"][f"{kind}_p50_ms"], inventory["large"][f"{kind}_p50_ms"]
            drift = inventory["large"]["baseline_p50_ms"] / inventory["small"]["baseline_p50_ms"]
            med[f"inventory_{kind}"] = {
                "small_p50_ms": small, "large_p50_ms": large, "ratio": large / small,
                "baseline_drift": drift, "ratio_drift_corrected": large / small / drift,
            }
    return med


def print_report(args: argparse.Namespace, results: dict, med: dict) -> None:
    print("\n## Storefront API results\n")
    print(f"date {results['date']}, {results['machine']}, gunicorn {results['gunicorn']}, "
          f"{args.runs} runs x {args.duration} s, wrk -t {args.wrk_threads}\n")
    if any(not name.startswith("inventory") for name in med):
        print("| scenario | conns | req/s (median) | p50 ms | p99 ms | ratio vs baseline (median) | goal "
              "| CPU ms/request: gunicorn + PostgreSQL |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    labels = {"baseline": "baseline (bare DRF UPDATE)", "redeem": "redemption",
              "flash": "flash sale issuance"}
    for name, entry in med.items():
        if name.startswith(("inventory", "covered")):
            continue
        scenario, conns = name.rsplit("_", 1)
        ratio = entry.get("ratio")
        goal = ""
        if scenario in ("redeem", "flash") and ratio is not None:
            goal = f">= {GOALS[scenario]:.2f}: {'met' if ratio >= GOALS[scenario] else 'MISSED'}"
        cpu = entry.get("cpu_ms_per_request")
        cpu_text = f"{cpu['gunicorn']:.2f} + {cpu['postgres']:.2f}" if cpu else ""
        print(f"| {labels[scenario]} | {conns} | {entry['rps']:.0f} | {entry['p50_ms']:.1f} | "
              f"{entry['p99_ms']:.1f} | {'' if ratio is None else f'{ratio:.2f}'} | {goal} | {cpu_text} |")
    if "inventory_issue" in med:
        inv = results["inventory"]
        print(f"\n| sequential p50 | {inv['small']['stored']:,} codes | {inv['large']['stored']:,} codes "
              "| ratio | goal | ratio / baseline's ratio (drift) |")
        print("| --- | ---: | ---: | ---: | --- | ---: |")
        for kind in ("issue", "redeem"):
            e = med[f"inventory_{kind}"]
            verdict = "met" if e["ratio"] <= GOALS["inventory"] else "MISSED"
            print(f"| {kind} | {e['small_p50_ms']:.2f} ms | {e['large_p50_ms']:.2f} ms | "
                  f"{e['ratio']:.2f} | <= {GOALS['inventory']:.2f}: {verdict} | "
                  f"{e['ratio_drift_corrected']:.2f} ({e['baseline_drift']:.2f}) |")
        drift = med["inventory_issue"]["baseline_drift"]
        print(f"| baseline (no codes involved) | {inv['small']['baseline_p50_ms']:.2f} ms | "
              f"{inv['large']['baseline_p50_ms']:.2f} ms | {drift:.2f} | | |")
        names = {"lookup": "code lookup by blind index", "batches": "claim: batches with stock",
                 "lock": "claim: lock 1 code (SKIP LOCKED)"}
        for name, text in names.items():
            small_ms, large_ms = inv["small"]["db_ms"][name], inv["large"]["db_ms"][name]
            print(f"| server-side, {text} | {small_ms:.3f} ms | {large_ms:.3f} ms | "
                  f"{large_ms / small_ms:.2f} | | |")
    if "auth" in results:
        auth = results["auth"]
        seq = results.get("baseline_sequential", {}).get("p50_ms")
        print(f"\nkey checking (ApiKeyAuthentication.authenticate, in-process, PostgreSQL): median "
              f"{auth['authenticate_us']:.0f} us over {auth['calls']:,} calls (of which hash check "
              f"{auth['hash_check_us']:.1f} us); rate-limit checks (2, Redis) "
              f"{auth['rate_limits_us']:.0f} us; "
              f"baseline request without auth, sequential p50 {seq:.2f} ms" if seq else "")
    if "covered_16" in med:
        e = med["covered_16"]
        cpu = {label: e.get(f"{label}_cpu_ms_per_request") for label in ("covered", "uncovered")}
        print(f"\nredemption with a covering agreement vs without, c=16, same round: "
              f"{e['rps']:.0f} vs {e['uncovered_rps']:.0f} req/s, ratio {e['ratio']:.2f} "
              f"(runs {e['ratios']}; goal >= 0.90: {'met' if e['ratio'] >= 0.90 else 'MISSED'}); "
              f"p50 {e['p50_ms']:.1f} ms, p99 {e['p99_ms']:.1f} ms"
              + ("; CPU ms/request gunicorn + PostgreSQL: " + ", ".join(
                  f"{label} {c['gunicorn']:.2f} + {c['postgres']:.2f}" for label, c in cpu.items() if c)
                 if any(cpu.values()) else "")
              + f"; ledger entries after the last round: {e['ledger_entries']}")
    flash = [r["flash"] for r in results.get("rounds", []) if "flash" in r]
    if flash:
        print("\nflash sale checks: " + "; ".join(
            f"run {i}: {'ok' if f['checks']['ok'] else 'FAILED'} ({f['checks']['issued']} issued, "
            f"statuses {f['statuses']})" for i, f in enumerate(flash, 1)))


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


# --------------------------------------------------------------------------------------
# Internal steps (child processes, Django set up with the bench environment)
# --------------------------------------------------------------------------------------


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()


def bench_caller():
    from vouchers.callers import Caller
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


def step_count_ledger(args: argparse.Namespace) -> dict:
    """Ledger entries of the covered product, and whether each partner's chain holds."""
    from partners.models import LedgerEntry
    from partners.services.ledger import verify_chain

    entries = LedgerEntry.objects.filter(sku=COVERED_SKU)
    partners = set(entries.values_list("partner_id", flat=True))
    chains_hold = all(verify_chain(partner_id=p) is None for p in partners)
    return {"entries": entries.count(), "chains_hold": chains_hold}


def step_verify_flash(args: argparse.Namespace) -> dict:
    """After a flash sale: exactly 1,000 issued, no code twice, counts add up, every key answered."""
    from django.db.models import Count, Sum

    from vouchers import selectors
    from vouchers.models import Batch, Code, CodeEvent, IdempotencyRecord, Issuance

    batch = Batch.objects.get(product__sku=args.sku)
    issued_codes = Code.objects.filter(batch=batch, state=Code.State.ISSUED)
    issuances = Issuance.objects.filter(product__sku=args.sku)
    issued_events = CodeEvent.objects.filter(batch=batch, action="issued")
    counted = selectors.counted_stock_by_state(batch.pk)
    counters = selectors.stock_by_state([batch.pk])[batch.pk]
    records = IdempotencyRecord.objects.filter(caller=bench_caller().identity,
                                               key__startswith=f"{args.label}-")
    by_status = dict(records.values_list("response_status").annotate(n=Count("id")).order_by())
    checks = {
        "issued": issued_codes.count(),
        "issuances": issuances.count(),
        "idempotency_records_by_status": {str(k): v for k, v in by_status.items()},
    }
    checks["exactly_1000_issued"] = checks["issued"] == FLASH_CODES and counted["available"] == 0
    checks["one_issuance_per_code"] = (
        issuances.filter(status=Issuance.Status.ISSUED).count() == FLASH_CODES
        and (issuances.aggregate(q=Sum("quantity"))["q"] or 0) == FLASH_CODES
        and issued_codes.values("issuance_id").distinct().count() == FLASH_CODES
        and not issued_codes.values("issuance_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    )
    checks["no_code_issued_twice"] = (
        issued_events.count() == FLASH_CODES
        and issued_events.values("code_id").distinct().count() == FLASH_CODES
    )
    checks["counts_add_up"] = counted == counters and sum(counted.values()) == batch.size
    checks["every_attempt_recorded"] = (
        records.count() == args.attempts and by_status.get(201) == FLASH_CODES
        and by_status.get(409) == args.attempts - FLASH_CODES
    )
    return checks


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


def step_auth_cost(args: argparse.Namespace) -> dict:
    """Per-request cost of checking an API key, in-process against PostgreSQL."""
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from vouchers.api import ratelimits
    from vouchers.api.authentication import ApiKeyAuthentication
    from vouchers.models import Storefront, StorefrontAPIKey
    from vouchers.services.api_keys import create_storefront_key

    caller = bench_caller()
    _, key = create_storefront_key(storefront=Storefront.objects.get(pk=caller.storefront_id),
                                   name="auth-cost", created_by=None)
    factory = APIRequestFactory()
    request = Request(factory.post("/api/v1/redemptions/", {}, format="json",
                                   HTTP_AUTHORIZATION=f"Api-Key {key}"))
    auth = ApiKeyAuthentication()
    api_key = StorefrontAPIKey.objects.get_from_key(key)

    def timed(fn, calls: int) -> float:
        for _ in range(min(200, calls)):
            fn()
        samples = []
        for _ in range(calls):
            started = time.perf_counter_ns()
            fn()
            samples.append(time.perf_counter_ns() - started)
        return statistics.median(samples) / 1000

    authenticate_us = timed(lambda: auth.authenticate(request), args.calls)
    hash_us = timed(lambda: api_key.is_valid(key), args.calls)

    def limits():
        ratelimits.limit_by_address(request)
        ratelimits.limit_by_key(request, api_key_id=api_key.pk)

    limits_us = timed(limits, args.calls)
    return {"calls": args.calls, "authenticate_us": authenticate_us, "hash_check_us": hash_us,
            "rate_limits_us": limits_us}


# Own (exclusive) CPU time by package, the first matching fragment naming the bucket:
# DRF's share of a request is its own frames (request wrapping, negotiation,
# serializers, renderers), not what runs under them.
OWN_TIME_BUCKETS = (
    ("DRF", ("rest_framework/",)),
    ("Django ORM", ("django/db/",)),
    ("Django (handlers, middleware, http)", ("django/",)),
    ("psycopg", ("psycopg/", "psycopg_binary")),
    ("Redis client", ("redis/", "django_redis/")),
    ("our code", ("/vouchers/", "/fraud/", "/partners/", "/config/")),
)
CPU_FOCUS = (
    ("dispatch", "rest_framework/views.py", "the whole request (DRF dispatch)"),
    ("initial", "vouchers/api/base.py", "auth + rate limits"),
    ("authenticate", "vouchers/api/authentication.py", "API key check"),
    ("_limit", "vouchers/api/ratelimits.py", "rate limits (2)"),
    ("claim", "vouchers/services/idempotency.py", "idempotency: claim (own transaction)"),
    ("lock_for_run", "vouchers/services/idempotency.py", "idempotency: lock the record"),
    ("complete", "vouchers/services/idempotency.py", "idempotency: store the response"),
    ("validated", "vouchers/api/base.py", "input serializer"),
    ("data", "rest_framework/serializers.py", "output serializer"),
    ("redeem_code", "vouchers/services/redemption.py", "service: redeem_code"),
    ("issue_codes", "vouchers/services/issuance.py", "service: issue_codes"),
    ("find_code", "vouchers/selectors.py", "code lookup (blind index)"),
    ("assess", "fraud/services/assessment.py", "fraud: assessment"),
    ("rules_for_merchant", "fraud/services/rules.py", "fraud: load the merchant's rules"),
    ("ensure_not_locked_out", "fraud/services/lockouts.py", "fraud: lockout check"),
    ("attach_assessment", "fraud/services/assessment.py", "fraud: link the assessment"),
    ("claim_codes", "vouchers/services/issuance.py", "claim codes (SKIP LOCKED)"),
    ("move_codes", "vouchers/services/issuance.py", "move codes (UPDATE, counters, events)"),
    ("record_moves", "vouchers/services/stock.py", "stock counters"),
    ("record_event", "vouchers/services/events.py", "event row"),
    ("close_old_connections", "django/db/__init__.py", "connection checks (request start/end)"),
)


def step_cpu_profile(args: argparse.Namespace) -> dict:
    """In-process CPU profile of issuance and redemption (cProfile timed by CPU clock).

    Requests go through DRF's test client, so the WSGI server is left out; the database
    and Redis are the bench's. Also counts SQL statements and Redis commands per
    request. cProfile adds overhead to Python calls, so shares are approximate.
    """
    import cProfile
    import pstats
    import uuid

    import redis
    from django.db import connection
    from rest_framework.test import APIClient

    from vouchers.models import Product
    from vouchers.services.generation import generate_batch

    n = args.count
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {os.environ['BENCH_API_KEY']}")
    generate_batch(product=Product.objects.get(sku=REDEEM_SKU), count=2 * n + 40)

    def issue(i: int):
        return client.post("/api/v1/issuances/", {"sku": REDEEM_SKU, "quantity": 1, "customer": f"cp-{i}"},
                           format="json", HTTP_IDEMPOTENCY_KEY=f"cpu-i-{uuid.uuid4().hex}")

    def redeem(code: str):
        return client.post("/api/v1/redemptions/", {"code": code}, format="json",
                           HTTP_IDEMPOTENCY_KEY=f"cpu-r-{uuid.uuid4().hex}")

    counts = {"sql": 0, "redis": 0}

    def count_sql(execute, sql, params, many, context):
        counts["sql"] += 1
        return execute(sql, params, many, context)

    original_redis = redis.Redis.execute_command
    original_pipeline = redis.client.Pipeline.execute

    def count_redis(self, *a, **kw):
        counts["redis"] += 1
        return original_redis(self, *a, **kw)

    def count_pipeline(self, *a, **kw):
        counts["redis"] += 1
        return original_pipeline(self, *a, **kw)

    codes = [issue(i).json()["codes"][0]["code"] for i in range(20)]  # warm-up (and codes)
    for code in codes:
        redeem(code)
    result = {}
    redis.Redis.execute_command = count_redis
    redis.client.Pipeline.execute = count_pipeline
    try:
        for kind in ("issue", "redeem"):
            counts.update(sql=0, redis=0)
            profiler = cProfile.Profile(time.process_time)
            cpu_started = time.process_time()
            wall_started = time.perf_counter()
            with connection.execute_wrapper(count_sql):
                profiler.enable()
                if kind == "issue":
                    responses = [issue(1000 + i) for i in range(n)]
                    codes = [r.json()["codes"][0]["code"] for r in responses if r.status_code == 201]
                else:
                    responses = [redeem(code) for code in codes]
                profiler.disable()
            cpu_ms = 1000 * (time.process_time() - cpu_started) / len(responses)
            stats = pstats.Stats(profiler).stats
            total = sum(tt for (_, _, tt, _, _) in stats.values())
            shares = {}
            for function, fragment, label in CPU_FOCUS:
                cumulative = sum(ct for (filename, _, name), (_, _, _, ct, _) in stats.items()
                                 if name == function and fragment in filename.replace(os.sep, "/"))
                if cumulative:
                    shares[label] = round(100 * cumulative / total, 1)
            own: dict[str, float] = {}
            for (filename, _, _), (_, _, tt, _, _) in stats.items():
                path = filename.replace(os.sep, "/")
                bucket = next((label for label, fragments in OWN_TIME_BUCKETS
                               if any(f in path for f in fragments)), "other (stdlib, builtins)")
                own[bucket] = own.get(bucket, 0.0) + tt
            ranked_own = sorted(own.items(), key=lambda item: -item[1])
            result_own = {label: round(100 * t / total, 1) for label, t in ranked_own}
            result[kind] = {
                "own_time_share_pct": result_own,
                "requests": len(responses),
                "statuses": sorted({r.status_code for r in responses}),
                "cpu_ms_per_request_profiled": cpu_ms,
                "wall_ms_per_request_profiled": 1000 * (time.perf_counter() - wall_started) / len(responses),
                "sql_statements_per_request": counts["sql"] / len(responses),
                "redis_round_trips_per_request": counts["redis"] / len(responses),
                "cpu_share_pct": shares,
            }
    finally:
        redis.Redis.execute_command = original_redis
        redis.client.Pipeline.execute = original_pipeline
    return result


def step_db_timings(args: argparse.Namespace) -> dict:
    """Server-side execution time of the queries that touch the codes table, by EXPLAIN
    ANALYZE: a code lookup by blind index, the batch query of a claim, and the claim's
    locking query (rolled back). Medians over `count` samples; random codes of the
    inventory product are looked up, so the index pages visited differ each time."""
    import re

    from django.db import transaction
    from django.db.models import BooleanField, F, Q
    from django.db.models.expressions import RawSQL
    from django.utils import timezone

    from vouchers import selectors
    from vouchers.models import Batch, Code, Product
    from vouchers.services import issuance

    def execution_ms(plan: str) -> float:
        return float(re.search(r"Execution Time: ([0-9.]+) ms", plan).group(1))

    product = Product.objects.get(sku=INVENTORY_SKU)
    batch_id = Batch.objects.filter(product=product).values_list("pk", flat=True).first()
    sample = list(Code.objects.filter(batch_id=batch_id).order_by("?").values_list("blind_index", flat=True)
                  [:args.count])
    timings: dict[str, list[float]] = {"lookup": [], "batches": [], "lock": []}
    for blind_index in sample:
        now = timezone.now()
        timings["lookup"].append(execution_ms(
            Code.objects.select_related("batch__product").filter(blind_index__in=[bytes(blind_index)])
            .explain(analyze=True)
        ))
        timings["batches"].append(execution_ms(
            Batch.objects.filter(product=product).filter(selectors.sellable_batches_q(now))
            .filter(RawSQL(issuance._HAS_CLAIMABLE_CODE, [now], output_field=BooleanField()))  # noqa: S611
            .order_by(F("valid_until").asc(nulls_last=True), "pk").values_list("pk", flat=True)
            .explain(analyze=True)
        ))
        with transaction.atomic():
            timings["lock"].append(execution_ms(
                Code.objects.filter(batch_id=batch_id, state=Code.State.AVAILABLE)
                .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now)).order_by("pk")
                .select_for_update(skip_locked=True, of=("self",))[:1].explain(analyze=True)
            ))
            transaction.set_rollback(True)
    return {name: statistics.median(values) for name, values in timings.items()}


STEPS = {
    "prepare": step_prepare, "issue": step_issue, "verify-flash": step_verify_flash,
    "fill": step_fill, "auth-cost": step_auth_cost, "cpu-profile": step_cpu_profile,
    "db-timings": step_db_timings, "count-ledger": step_count_ledger,
}


def parse_args(argv: list[str]) -> argparse.Namespace:
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
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
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


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.step == "run":
        return run(args)
    setup_django()
    result = STEPS[args.step](args)
    Path(args.out).write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
