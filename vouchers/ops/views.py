"""Operations endpoints: liveness, readiness, Prometheus metrics.

- `GET /healthz`: 200 while the process runs and serves requests; touches nothing else.
- `GET /readyz`: 200 when the database, the cache and the Celery broker answer; 503
  (application/problem+json, code `not_ready`) naming each that failed otherwise. Each
  probe is bounded by its backend's timeouts (REDIS_CONNECT_TIMEOUT, READYZ_TIMEOUT).
- `GET /metrics`: Prometheus text format. In production it is refused (404, so that it
  is not advertised) unless the request carries `Authorization: Bearer <METRICS_TOKEN>`
  or comes from an address in METRICS_ALLOWED_IPS (addresses or CIDR ranges, as seen by
  Django: REMOTE_ADDR). With neither set, /metrics is closed in production.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger("ops")
PROBLEM = "application/problem+json"


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def check_database() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_cache() -> None:
    from django.core.cache import caches

    cache = caches["default"]
    if hasattr(cache, "client") and cache.__class__.__module__.startswith("django_redis"):
        from django_redis import get_redis_connection

        get_redis_connection("default").ping()
        return
    cache.get("ops:readyz")  # local memory: answers while the process runs


def check_broker() -> None:
    from config.celery import app

    if app.conf.task_always_eager or str(app.conf.broker_url).startswith("memory://"):
        return  # tasks run in-process: there is no broker to wait for
    timeout = float(getattr(settings, "READYZ_TIMEOUT", 2.0))
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        if conn.transport_cls in ("redis", "rediss"):
            conn.default_channel.client.ping()


CHECKS = {"database": check_database, "cache": check_cache, "broker": check_broker}


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    results: dict[str, str] = {}
    failed: list[str] = []
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:
            logger.warning("readiness: %s unavailable (%s)", name, exc.__class__.__name__)
            results[name] = "unavailable"
            failed.append(name)
        else:
            results[name] = "ok"
    if not failed:
        return JsonResponse({"status": "ok", "checks": results})
    body = {
        "type": "https://errors.vouchers.example/not_ready", "title": "Not ready", "status": 503,
        "code": "not_ready", "detail": f"Unavailable: {', '.join(failed)}.", "failed": failed,
        "checks": results,
    }
    response = JsonResponse(body, status=503, content_type=PROBLEM)
    response["Retry-After"] = "5"
    return response


def metrics_allowed(request: HttpRequest) -> bool:
    if not settings.PRODUCTION:
        return True
    token = settings.METRICS_TOKEN
    sent = request.headers.get("Authorization", "")
    if token and sent.startswith("Bearer ") and hmac.compare_digest(sent[7:].encode(), token.encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_IPS)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_allowed(request):
        return JsonResponse({"type": "https://errors.vouchers.example/not_found", "title": "Not found",
                             "status": 404, "code": "not_found", "detail": "Not found."},
                            status=404, content_type=PROBLEM)
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    import config.metrics  # noqa: F401  (registers the business counters in this process)

    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
