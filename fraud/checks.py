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


@checks.register()
def facts_have_listeners(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """fraud announces its facts as signals (fraud/signals.py); one nobody receives is lost.

    Without a receiver a severe event would write no `fraud.alert` webhook, silently (a
    lift refuses by itself, see `lift_lockout`; this says so before the first request).
    """
    from fraud.models import FraudEvent
    from fraud.signals import fraud_event_recorded, lockout_lifted

    missing = [
        (name, hint)
        for name, signal, hint in (
            ("fraud_event_recorded", fraud_event_recorded, "the webhook outbox (vouchers.webhooks)"),
            ("lockout_lifted", lockout_lifted, "the audit log (vouchers.audit)"),
        )
        if not signal.has_listeners(FraudEvent)
    ]
    return [
        checks.Error(
            f"Nothing receives fraud's {name} signal: what it announces would not be recorded.",
            hint=f"Install the app that records it: {hint}.",
            id="fraud.E003",
        )
        for name, hint in missing
    ]
