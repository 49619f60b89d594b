"""Profiling: py-spy on gunicorn during an extra round, and the in-process cProfile step."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.api.common import BASELINE_ROWS, FLASH_ATTEMPTS, FLASH_SKU, REDEEM_SKU, RESULTS_DIR, ROOT, log
from bench.api.load import fmt_summary

if TYPE_CHECKING:
    from bench.api.scenarios import Bench


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
    ("admit", "vouchers/api/ratelimits.py"),
    ("claim", "vouchers/services/idempotency.py"),
    ("respond_once", "vouchers/api/idempotent.py"),
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


def profile_round(bench: Bench, db: str, key: str, estimate: float) -> dict:
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
    if "redeem" in bench.args.only:
        count = int(max(estimate, 50) * bench.args.duration * 1.6) + 500
        codes = bench.issue_codes_file(database=db, sku=REDEEM_SKU, count=count, name="profile")
        scenarios.append(("redeem-c64", "redeem.lua", 64, 0, ["p-r", str(codes), key]))
    if "baseline" in bench.args.only:
        scenarios.append(("baseline-c64", "baseline.lua", 64, 0, ["p-b", str(BASELINE_ROWS)]))
    if "flash" in bench.args.only:
        sku = FLASH_SKU.format(bench.args.runs + 1)
        scenarios.append(("flash-c64", "issue.lua", 64, FLASH_ATTEMPTS, ["p-f", sku, key]))
    for name, script, connections, quota_total, script_args in scenarios:
        out = RESULTS_DIR / f"pyspy-{name}.txt"
        spy = subprocess.Popen(
            ["py-spy", "record", "--pid", str(bench.gunicorn.pid), "--subprocesses", "--rate", "100",
             "--gil", "--format", "raw", "--output", str(out), "--duration", "600"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        try:
            summary = bench.wrk(script, connections=connections,
                               duration=bench.args.duration if not quota_total else 300,
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
