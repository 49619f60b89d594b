"""What the console's dashboard costs to render at a large inventory, on PostgreSQL.

    DATABASE_URL=postgres://.../<db> python bench/dashboard_bench.py --codes 10000000 --issuances 1000000

The database named by DATABASE_URL is migrated and then FILLED (its voucher, fraud and
console tables are truncated first): point it at a database of its own. Rows are made
with bulk SQL (generate_series), not the services: 100 batches over 10 products of one
merchant, `--codes` codes (random bytes stand in for ciphertexts; no real code exists),
`--issuances` single-code issuances spread over the last 30 days, 40 % of them
redeemed, one code event per sale and per redemption, one risk assessment per issuance,
the stock counters computed from the codes. One batch in ten (batches 5, 15, ...) has
no end of validity but codes with their own expiry, spread over the next 60 days (what
an import with an expiry column makes): the dashboard's "expiring soon" counts them from
a partial index. Then:

1. the roll-up is folded from scratch (timed: what the first beat run after a deploy costs);
2. a live tail of --tail new sales is added above the watermark (what the dashboard
   reads beyond the roll-up between two beat runs);
3. the per-day figures of codes expiring by their own date are rebuilt (timed: what the
   beat task costs every 5 minutes; also with --skip-fill, as the beat would have);
4. the admin home (the dashboard) is rendered --runs times for the merchant's staff
   through Django's test client, in-process: the server time of one page, template
   included, alternating with a baseline page of the same frame (the merchant list).
   Reported: median, min, max, the SQL time, the number of SQL queries, and the
   dashboard / baseline ratio (median of the pairs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, reset_queries  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

TABLES = [
    "dashboard_dailycodefigure", "dashboard_dailydecisionfigure", "dashboard_rollupwatermark",
    "dashboard_stockalert", "dashboard_productalertsetting", "dashboard_merchantalertsetting",
    "fraud_riskassessment", "fraud_fraudevent", "vouchers_codeevent", "vouchers_redemption",
    "vouchers_stockcounter", "vouchers_code", "vouchers_issuance", "vouchers_batch",
    "vouchers_storefront_products", "vouchers_storefrontapikey", "vouchers_storefront",
    "vouchers_product", "vouchers_merchantstaff", "vouchers_merchant",
]

BATCHES, PRODUCTS, SHARDS = 100, 10, 16
# A page with the same frame (theme, sidebar, session, tenancy) and one small list: what
# any console page costs on this machine at this moment, measured alongside.
BASELINE = "/admin/vouchers/merchant/"


def run(sql: str, params=None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])


def timed(label: str, fn):
    start = time.perf_counter()
    result = fn()
    print(f"  {label}: {time.perf_counter() - start:.1f} s", flush=True)
    return result


def fill(codes: int, issuances: int) -> None:
    run("TRUNCATE " + ", ".join(TABLES) + " RESTART IDENTITY CASCADE")
    run("INSERT INTO vouchers_merchant (name, slug, reversal_window_days, created_at) "
        "VALUES ('Bench merchant', 'bench', 30, now())")
    run("INSERT INTO vouchers_storefront (merchant_id, name, is_active, reservation_ttl_seconds, created_at) "
        "VALUES (1, 'Bench shop', true, 900, now())")
    run("INSERT INTO vouchers_product (merchant_id, sku, name, face_value, currency, is_active, created_at) "
        "SELECT 1, 'SKU-' || p, 'Product ' || p, 50, 'USD', true, now() FROM generate_series(1, %s) p",
        [PRODUCTS])
    per_batch = codes // BATCHES
    run("INSERT INTO vouchers_batch (product_id, reference, source, status, valid_from, valid_until, "
        "case_sensitive, format, size, created_at) "
        "SELECT 1 + (b - 1) %% %s, 'bench-' || b, 'generated', 'active', NULL, "
        "CASE WHEN b %% 10 = 0 THEN now() + (b / 10) * interval '3 days' END, false, '{}', %s, now() "
        "FROM generate_series(1, %s) b", [PRODUCTS, per_batch, BATCHES])
    timed("issuances", lambda: run(
        "INSERT INTO vouchers_issuance (id, storefront_id, product_id, quantity, customer, "
        "order_ref, status, "
        "context, created_at, updated_at) "
        "SELECT md5(i::text)::uuid, 1, 1 + ((i - 1) / %s) %% %s, 1, 'c' || i, '', 'issued', '{}', "
        "now() - (i %% 30) * interval '1 day' - (i %% 86400) * interval '1 second', now() "
        "FROM generate_series(1, %s) i", [per_batch, PRODUCTS, issuances]))
    # Code i belongs to batch 1 + (i-1) / per_batch; the first `issuances` codes are sold,
    # code i to issuance i, every 5th and 5th+1 ... 40 % redeemed.
    timed("codes", lambda: run(
        "INSERT INTO vouchers_code (batch_id, ciphertext, nonce, key_id, blind_index, last4, "
        "serial, expires_at, "
        "state, issuance_id, state_changed_at, redeemed_at, is_canary) "
        "SELECT 1 + (i - 1) / %(per)s, decode(md5(i::text || 'c'), 'hex'), "
        "decode(substr(md5(i::text), 1, 24), 'hex'), "
        "'k1', decode(md5(i::text), 'hex'), 'ABCD', NULL, "
        "CASE WHEN (1 + (i - 1) / %(per)s) %% 10 = 5 THEN now() + (i %% 60) * interval '1 day' "
        "+ interval '1 hour' END, "
        "CASE WHEN i > %(sold)s THEN 'available' WHEN i %% 5 < 2 THEN 'redeemed' ELSE 'issued' END, "
        "CASE WHEN i <= %(sold)s THEN md5(i::text)::uuid END, NULL, "
        "CASE WHEN i <= %(sold)s AND i %% 5 < 2 THEN now() - (i %% 30) * interval '1 day' END, false "
        "FROM generate_series(1, %(n)s) i", {"per": per_batch, "sold": issuances, "n": per_batch * BATCHES}))
    timed("code events", lambda: run(
        "INSERT INTO vouchers_codeevent (batch_id, code_id, issuance_id, action, from_state, "
        "to_state, actor, "
        "details, created_at) "
        "SELECT c.batch_id, c.id, c.issuance_id, e.action, e.from_state, e.to_state, 'storefront:1', '{}', "
        "i.created_at + e.lag FROM vouchers_code c JOIN vouchers_issuance i ON i.id = c.issuance_id "
        "CROSS JOIN LATERAL (VALUES ('issued', 'available', 'issued', interval '0'), "
        "('redeemed', 'issued', 'redeemed', interval '1 hour')) e(action, from_state, to_state, lag) "
        "WHERE c.issuance_id IS NOT NULL AND (e.action = 'issued' OR c.state = 'redeemed') "
        "ORDER BY i.created_at + e.lag"))
    timed("risk assessments", lambda: run(
        "INSERT INTO fraud_riskassessment (merchant_id, action, outcome, score, reasons, details, "
        "api_key_id, "
        "storefront_id, quantity, customer, ip, ip_group, device_id, email, issuance_id, created_at) "
        "SELECT 1, 'issue', CASE WHEN i.customer LIKE '%%7' THEN 'review' ELSE 'allow' END, 0, "
        "'[]', '[]', '', "
        "1, 1, i.customer, '', '', '', '', i.id, i.created_at FROM vouchers_issuance i ORDER BY "
        "i.created_at"))
    timed("stock counters", lambda: run(
        "INSERT INTO vouchers_stockcounter (batch_id, state, shard, count) "
        "SELECT b.id, s.state, sh.shard, CASE WHEN sh.shard = 0 THEN "
        "(SELECT count(*) FROM vouchers_code c WHERE c.batch_id = b.id AND c.state = s.state) ELSE 0 END "
        "FROM vouchers_batch b CROSS JOIN (VALUES ('available'), ('reserved'), ('issued'), ('redeemed'), "
        "('void')) s(state) CROSS JOIN generate_series(0, %s) sh(shard)", [SHARDS - 1]))
    timed("analyze", lambda: run("ANALYZE"))


def add_tail(tail: int) -> None:
    """`tail` sales of today above the watermark (codes still available become issued)."""
    run("INSERT INTO vouchers_codeevent (batch_id, code_id, issuance_id, action, from_state, "
        "to_state, actor, "
        "details, created_at) SELECT c.batch_id, c.id, NULL, 'issued', 'available', 'issued', "
        "'storefront:1', "
        "'{}', now() FROM vouchers_code c WHERE c.state = 'available' ORDER BY c.id DESC LIMIT %s", [tail])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=10_000_000)
    parser.add_argument("--issuances", type=int, default=1_000_000)
    parser.add_argument("--tail", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--skip-fill", action="store_true", help="Reuse the rows of a previous run.")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("DATABASE_URL must name a PostgreSQL database of its own (it is truncated).")

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from vouchers.dashboard import rollup
    from vouchers.dashboard.models import DailyCodeFigure, DailyDecisionFigure, RollupWatermark
    from vouchers.models import Code, CodeEvent, MerchantStaff

    call_command("migrate", verbosity=0)
    if not args.skip_fill:
        print(f"filling: {args.codes:,} codes, {args.issuances:,} issuances", flush=True)
        fill(args.codes, args.issuances)
        DailyCodeFigure.objects.all().delete()
        DailyDecisionFigure.objects.all().delete()
        RollupWatermark.objects.all().delete()
        later = timezone.now() + rollup.ROLLUP_LAG
        moved = timed("fold the roll-up from scratch", lambda: rollup.fold_all(now=later, max_chunks=10_000))
        print(f"    folded: {moved}")
        add_tail(args.tail)
    # What the beat task does every 5 minutes (timed: its cost at this size).
    written = timed("rebuild the expiring-code figures", lambda: rollup.refresh_expiring_codes())
    print(f"    rows: {written}")
    print(f"rows: codes {Code.objects.count():,}, code events {CodeEvent.objects.count():,}, "
          f"roll-up rows {DailyCodeFigure.objects.count():,}, tail above the watermark "
          f"{CodeEvent.objects.filter(pk__gt=rollup.watermark(rollup.CODE_EVENTS)).count():,}")

    user, _ = get_user_model().objects.get_or_create(username="bench-staff", defaults={"is_staff": True})
    MerchantStaff.objects.get_or_create(user=user, defaults={"merchant_id": 1})
    from django.contrib.auth.models import Permission

    user.user_permissions.add(*Permission.objects.filter(content_type__app_label__in=["vouchers", "fraud"]))
    client = Client()
    client.force_login(user)
    client.get("/admin/")  # warm: templates, connection
    client.get(BASELINE)
    timings, sql_times, baseline = [], [], []
    for _ in range(args.runs):
        # The baseline first, then the dashboard: drift on a shared machine hits both.
        start = time.perf_counter()
        assert client.get(BASELINE).status_code == 200
        baseline.append((time.perf_counter() - start) * 1000)
        reset_queries()
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            response = client.get("/admin/")
            timings.append((time.perf_counter() - start) * 1000)
        sql_times.append(sum(float(q["time"]) for q in queries.captured_queries) * 1000)
        assert response.status_code == 200 and b'data-testid="in-stock"' in response.content
    from vouchers.dashboard.selectors import merchant_dashboard
    from vouchers.models import Merchant

    board = merchant_dashboard(merchant=Merchant.objects.get(pk=1))
    print(f"dashboard render (ms, {args.runs} runs): median {statistics.median(timings):.0f}, "
          f"min {min(timings):.0f}, max {max(timings):.0f}; {len(queries)} queries, "
          f"SQL median {statistics.median(sql_times):.0f} ms")
    ratios = [t / b for t, b in zip(timings, baseline, strict=True)]
    print(f"baseline {BASELINE} (ms): median {statistics.median(baseline):.0f}; "
          f"dashboard / baseline, median of the pairs: {statistics.median(ratios):.2f}")
    print(f"  shown: in stock {board.in_stock:,}, issued 30 d {board.totals['issued'][30]:,}, "
          f"redeemed 30 d {board.totals['redeemed'][30]:,}")


if __name__ == "__main__":
    main()
