"""The scenarios of a run: warm-up, rounds, covered redemption, sequential latency, inventory sizes."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from bench.api.checks import flash_checks
from bench.api.common import (
    BASELINE_ROWS,
    COVERED_SKU,
    FLASH_ATTEMPTS,
    FLASH_SKU,
    INVENTORY_SKU,
    REDEEM_SKU,
    log,
)
from bench.api.load import Load, fmt_summary
from bench.api.profile import profile_round


class Bench(Load):
    """One run: the main phase (rounds of baseline, redemption, flash sale), the
    inventory phase, the sequential and in-process measurements."""

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
                self.results["profiles"] = profile_round(self, db, key, estimate)
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
            flash_checks(summary, checks)
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
