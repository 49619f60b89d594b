"""The request gate: rate limits per API key and per connection address, one round trip.

Both limits are generous: the connection address is the storefront's server, shared
by all its customers. They are fixed windows counted with INCR in Redis, in the
same MULTI/EXEC that also reads what the rest of the request would otherwise ask
Redis for one by one (the lockout state of the end customer, see
`StorefrontApiView.read_ahead_keys`). django-ratelimit did the same counting with
two round trips per limit (add, then incr), four per request; it stays the limiter
of the admin's login form.

If the shared counter store is unreachable the API fails closed with 503, never
runs unlimited.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from fraud import counters
from fraud.exceptions import RiskCheckUnavailable
from vouchers.api.errors import RateLimited, RateLimiterUnavailable

logger = logging.getLogger("vouchers.api")

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """'6000/m' -> (6000, 60); '100/5m' -> (100, 300). Raises ValueError."""
    count, _, period = rate.partition("/")
    multiplier = period[:-1] or "1"
    return int(count), int(multiplier) * PERIODS[period[-1]]


def _limit_key(group: str, value: str) -> str:
    return f"api:rl:{group}:{hashlib.sha256(value.encode()).hexdigest()[:24]}"


def admit(request, *, api_key_id: str | None, reads: Sequence[str] = ()) -> dict[str, object]:
    """Count the request per address (and per key once authenticated); return the `reads`.

    Raises RateLimited (429 with Retry-After) or RateLimiterUnavailable (503).
    """
    rates = [(settings.API_RATE_PER_ADDRESS, "addr", request.META.get("REMOTE_ADDR", ""))]
    if api_key_id is not None:
        rates.append((settings.API_RATE_PER_KEY, "key", str(api_key_id)))
    limits, maxima = [], []
    for rate, group, value in rates:
        maximum, window = parse_rate(rate)
        limits.append(counters.FixedLimit(_limit_key(group, value), window))
        maxima.append((maximum, rate))
    try:
        result = counters.gate(limits=limits, reads=list(reads), alias=settings.RATELIMIT_USE_CACHE)
    except RiskCheckUnavailable:
        logger.warning("rate-limit store unreachable; refusing request")
        raise RateLimiterUnavailable(
            _("Rate limiting is unavailable; try again shortly."), retry_after=5
        ) from None
    for count, retry_after, (maximum, rate) in zip(result.counts, result.retry_after, maxima, strict=True):
        if count > maximum:
            raise RateLimited(f"More than {rate} requests; slow down.", retry_after=retry_after)
    return result.values
