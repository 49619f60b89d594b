"""Rate limits through django-ratelimit: per API key and per connection address.

Both are generous: the connection address is the storefront's server, shared by all
its customers. If the shared counter store (Redis) is unreachable the API fails
closed with 503, never runs unlimited.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from django_ratelimit.core import get_usage

from vouchers.api.errors import RateLimited, RateLimiterUnavailable

logger = logging.getLogger("vouchers.api")


def _limit(request, *, group: str, value: str, rate: str) -> None:
    try:
        usage = get_usage(request, group=group, key=lambda _g, _r: value, rate=rate, increment=True)
    except Exception:  # any failure of the counter store
        logger.warning("rate-limit store unreachable; refusing request", exc_info=True)
        raise RateLimiterUnavailable(
            "Rate limiting is unavailable; try again shortly.", retry_after=5
        ) from None
    if usage is None:
        return
    # django-ratelimit's sign that the store did not answer: a zero count (a real count is
    # at least 1, we always increment) with a zero limit. Not `time_left < 0` alone: that
    # is also -1 when the window ends in the very second the request crosses, which
    # turned about 1 request in 5,000 into a spurious 503 under load.
    if usage["count"] == 0 and usage["limit"] == 0:
        raise RateLimiterUnavailable(_("Rate limiting is unavailable; try again shortly."), retry_after=5)
    if usage["should_limit"]:
        raise RateLimited(
            f"More than {rate} requests; slow down.", retry_after=max(usage["time_left"], 1)
        )


def limit_by_address(request) -> None:
    _limit(request, group="api:addr", value=request.META.get("REMOTE_ADDR", ""),
           rate=settings.API_RATE_PER_ADDRESS)


def limit_by_key(request, *, api_key_id: str) -> None:
    _limit(request, group="api:key", value=str(api_key_id), rate=settings.API_RATE_PER_KEY)
