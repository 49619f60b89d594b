"""The distributed-guessing alarm: a sudden rise in one merchant's failure rate.

Per-scope lockouts stop one guesser; a botnet spreading guesses over many IPs and
customers stays under each threshold. So failures of all callers of a merchant are
also counted in fixed windows of FRAUD_GUESSING_WINDOW_SECONDS. The alarm goes off
when the current window holds
- at least FRAUD_GUESSING_MIN_FAILURES failures, and
- at least FRAUD_GUESSING_MULTIPLIER times the mean of the previous
  FRAUD_GUESSING_BASELINE_WINDOWS windows (the baseline), and
- failures from at least FRAUD_GUESSING_MIN_DISTINCT_SOURCES distinct sources
  (IP /64 groups; customer or API key when no IP is given).
It raises one high-severity FraudEvent (and its alert) per merchant per cooldown
period (fixed periods of FRAUD_GUESSING_COOLDOWN_SECONDS), so a long wave is one
alarm an hour, not one per failure.
"""

from __future__ import annotations

import math

from fraud import clock, conf, counters, subjects
from fraud.context import RiskContext
from fraud.models import FraudEvent
from fraud.services.events import record_fraud_event


def _source(ctx: RiskContext) -> str:
    ip_group = subjects.ip_subject(ctx.ip)
    if ip_group:
        return f"ip:{ip_group}"
    if ctx.customer.strip():
        return f"customer:{ctx.customer.strip()}"
    return f"api_key:{ctx.api_key_id}"


def bucket_for(ctx: RiskContext) -> counters.BucketCount:
    """The merchant's current failure bucket and this failure's source, to be counted."""
    width = int(conf.get("FRAUD_GUESSING_WINDOW_SECONDS"))
    baseline_windows = int(conf.get("FRAUD_GUESSING_BASELINE_WINDOWS"))
    return counters.BucketCount(
        name=counters.subject_key("guess", ctx.merchant_id),
        distinct_name=counters.subject_key("guess-src", ctx.merchant_id), member=_source(ctx),
        bucket=int(clock.now() // width), ttl=width * (baseline_windows + 2),
    )


def observe_failure(*, ctx: RiskContext, reason: str) -> FraudEvent | None:
    """Count one failure for the merchant; return the alarm event if this one raised it.

    Raises RiskCheckUnavailable if the counter store is unreachable.
    """
    bucket = bucket_for(ctx)
    failures = counters.bucket_incr(bucket.name, bucket=bucket.bucket, ttl=bucket.ttl)
    sources = counters.distinct_bucket_add(bucket.distinct_name, bucket.member, bucket=bucket.bucket,
                                           ttl=bucket.ttl)
    return judge_failures(ctx=ctx, reason=reason, bucket=bucket, failures=failures, sources=sources)


def judge_failures(
    *, ctx: RiskContext, reason: str, bucket: counters.BucketCount, failures: int, sources: int
) -> FraudEvent | None:
    """Raise the alarm if the counted bucket (`failures`, `sources`) says so; else None.

    Raises RiskCheckUnavailable.
    """
    width = int(conf.get("FRAUD_GUESSING_WINDOW_SECONDS"))
    baseline_windows = int(conf.get("FRAUD_GUESSING_BASELINE_WINDOWS"))
    now = clock.now()
    name, number = bucket.name, bucket.bucket
    if failures < int(conf.get("FRAUD_GUESSING_MIN_FAILURES")):
        return None
    if sources < int(conf.get("FRAUD_GUESSING_MIN_DISTINCT_SOURCES")):
        return None
    history = counters.bucket_counts(name, buckets=list(range(number - baseline_windows, number)))
    baseline = sum(history) / baseline_windows
    if failures < math.ceil(float(conf.get("FRAUD_GUESSING_MULTIPLIER")) * baseline):
        return None
    cooldown = int(conf.get("FRAUD_GUESSING_COOLDOWN_SECONDS"))
    claimed = counters.add_value(
        counters.subject_key("guess-alarm", ctx.merchant_id, int(now // cooldown)), 1, ttl=2 * cooldown
    )
    if not claimed:
        return None
    return record_fraud_event(
        merchant_id=ctx.merchant_id, severity=FraudEvent.Severity.HIGH,
        kind=FraudEvent.Kind.DISTRIBUTED_GUESSING,
        context={
            "window_seconds": width, "failures_in_window": failures, "distinct_sources": sources,
            "baseline_per_window": round(baseline, 2), "baseline_windows": baseline_windows,
            "last_reason": reason, "last_api_key_id": ctx.api_key_id, "last_ip": ctx.ip,
        },
    )
