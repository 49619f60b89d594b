"""Business counters in Prometheus format, one place for every app to count in.

In config, the bottom layer, so that fraud and partners count here without importing
vouchers; the names keep their `vouchers_` prefix (operators alert on them).

Import a counter and count where the fact becomes true (after it is committed where
that matters):

    from config import metrics
    metrics.WEBHOOK_DELIVERIES.labels(outcome="delivered").inc()

The names are part of what operators alert on: keep them stable.

Multi-process: gunicorn workers and Celery workers are separate processes. With
PROMETHEUS_MULTIPROC_DIR set (a directory, emptied before the service starts; see
docs/deploy.md) every process writes its counts there and `/metrics` sums them all,
Celery's included when it shares the directory. Without it (the embedded default, one
process) the counts are this process's own.
"""

from __future__ import annotations

from prometheus_client import Counter

CODES_ISSUED = Counter(
    "vouchers_codes_issued", "Codes handed to storefronts (issuances and confirmed reservations).",
)
CODES_REDEEMED = Counter("vouchers_codes_redeemed", "Codes redeemed.")
OUT_OF_STOCK = Counter("vouchers_out_of_stock", "Issuance or reservation requests refused: out of stock.")
FRAUD_DECISIONS = Counter(
    "vouchers_fraud_decisions", "Fraud assessments by outcome (allow, review, deny).", ["outcome"],
)
LOCKOUTS = Counter(
    "vouchers_lockouts", "Lockouts after failed checks or redemptions, by scope (api_key, customer, ip).",
    ["scope"],
)
LEAK_SIGNALS = Counter(
    "vouchers_leak_signals", "Uses of never-issued or canary codes, by kind.", ["kind"],
)
WEBHOOK_DELIVERIES = Counter(
    "vouchers_webhook_deliveries",
    "Webhook delivery attempts by outcome: delivered (2xx), retry (will be tried again), failed (gave up).",
    ["outcome"],
)
WEBHOOK_FAILURES = Counter(
    "vouchers_webhook_failures", "Webhook events marked failed after their last retry.",
)
STATEMENTS_ISSUED = Counter(
    "vouchers_statements_issued", "Partner statements issued, by currency.", ["currency"],
)
STATEMENT_TOTALS = Counter(
    "vouchers_statement_total_minor_units",
    "Sum of the absolute totals of issued partner statements, in minor units, by currency.",
    ["currency"],
)
