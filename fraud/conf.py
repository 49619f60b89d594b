"""Fraud settings with their defaults.

Every value can be overridden in Django settings under the same name; nothing here
needs an environment variable. Thresholds that a merchant tunes live on their
`FraudRule` rows instead (see docs/fraud.md).
"""

from __future__ import annotations

from django.conf import settings

DEFAULTS: dict[str, object] = {
    # Cache alias holding the counters (django-redis in production, locmem embedded).
    "FRAUD_CACHE_ALIAS": "default",
    # Failed attempts (unknown or never-issued codes) per scope before a lockout starts.
    # An API key is shared by all of a storefront's customers, so it gets a high bar.
    "FRAUD_LOCKOUT_THRESHOLDS": {"api_key": 200, "customer": 5, "ip": 10},
    # Window in which failures are counted (sliding, see counters.py).
    "FRAUD_LOCKOUT_WINDOW_SECONDS": 15 * 60,
    # The first lockout lasts BASE seconds; each further one within STRIKE_MEMORY doubles,
    # up to MAX.
    "FRAUD_LOCKOUT_BASE_SECONDS": 60,
    "FRAUD_LOCKOUT_MAX_SECONDS": 24 * 60 * 60,
    "FRAUD_LOCKOUT_STRIKE_MEMORY_SECONDS": 24 * 60 * 60,
    # Distributed guessing: failures of one merchant in a fixed window compared with the
    # mean of the BASELINE_WINDOWS before it.
    "FRAUD_GUESSING_WINDOW_SECONDS": 5 * 60,
    "FRAUD_GUESSING_BASELINE_WINDOWS": 12,
    "FRAUD_GUESSING_MULTIPLIER": 5,
    "FRAUD_GUESSING_MIN_FAILURES": 50,
    "FRAUD_GUESSING_MIN_DISTINCT_SOURCES": 10,
    "FRAUD_GUESSING_COOLDOWN_SECONDS": 60 * 60,
    # Alerts: events at or above this severity are e-mailed to the merchant's staff.
    "FRAUD_ALERT_MIN_SEVERITY": "high",
    # At most one alert per (merchant, kind, batch) in this many seconds; events are
    # always recorded.
    "FRAUD_ALERT_THROTTLE_SECONDS": 5 * 60,
    # Retry-After sent with risk_unavailable (the counter store is down).
    "FRAUD_UNAVAILABLE_RETRY_AFTER": 30,
}


def get(name: str):
    """The setting `name`, or its default."""
    return getattr(settings, name, DEFAULTS[name])
