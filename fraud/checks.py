"""System checks: the fraud counters must fail loudly, never silently."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from fraud import conf


@checks.register(checks.Tags.caches)
def counter_cache_fails_loudly(app_configs, **kwargs) -> list[checks.CheckMessage]:
    alias = conf.get("FRAUD_CACHE_ALIAS")
    cache = settings.CACHES.get(alias)
    if cache is None:
        return [checks.Error(f"FRAUD_CACHE_ALIAS {alias!r} is not in CACHES.", id="fraud.E001")]
    if cache.get("OPTIONS", {}).get("IGNORE_EXCEPTIONS") or getattr(
        settings, "DJANGO_REDIS_IGNORE_EXCEPTIONS", False
    ):
        return [checks.Error(
            f"The fraud counter cache {alias!r} ignores exceptions: a Redis outage would read as "
            "'nothing counted' and let every request through.",
            hint="Remove IGNORE_EXCEPTIONS, or point FRAUD_CACHE_ALIAS at a cache without it.",
            id="fraud.E002",
        )]
    return []
