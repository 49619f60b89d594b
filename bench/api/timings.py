"""In-process timings (child steps): key checking and rate limits, server-side query execution."""

from __future__ import annotations

import argparse
import statistics
import time

from bench.api.common import INVENTORY_SKU
from bench.api.data import bench_caller


def step_auth_cost(args: argparse.Namespace) -> dict:
    """Per-request cost of checking an API key, in-process against PostgreSQL."""
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from vouchers.api import ratelimits
    from vouchers.api.authentication import ApiKeyAuthentication
    from vouchers.models import Storefront, StorefrontAPIKey
    from vouchers.services.api_keys import create_storefront_key

    caller = bench_caller()
    _, key = create_storefront_key(storefront=Storefront.objects.get(pk=caller.storefront_id),
                                   name="auth-cost", created_by=None)
    factory = APIRequestFactory()
    request = Request(factory.post("/api/v1/redemptions/", {}, format="json",
                                   HTTP_AUTHORIZATION=f"Api-Key {key}"))
    auth = ApiKeyAuthentication()
    api_key = StorefrontAPIKey.objects.get_from_key(key)

    def timed(fn, calls: int) -> float:
        for _ in range(min(200, calls)):
            fn()
        samples = []
        for _ in range(calls):
            started = time.perf_counter_ns()
            fn()
            samples.append(time.perf_counter_ns() - started)
        return statistics.median(samples) / 1000

    authenticate_us = timed(lambda: auth.authenticate(request), args.calls)
    hash_us = timed(lambda: api_key.is_valid(key), args.calls)

    def limits():  # the per-address and per-key limits in their one Redis round trip
        ratelimits.admit(request, api_key_id=api_key.pk)

    limits_us = timed(limits, args.calls)
    return {"calls": args.calls, "authenticate_us": authenticate_us, "hash_check_us": hash_us,
            "rate_limits_us": limits_us}


def step_db_timings(args: argparse.Namespace) -> dict:
    """Server-side execution time of the queries that touch the codes table, by EXPLAIN
    ANALYZE: a code lookup by blind index, the batch query of a claim, and the claim's
    locking query (rolled back). Medians over `count` samples; random codes of the
    inventory product are looked up, so the index pages visited differ each time."""
    import re

    from django.db import transaction
    from django.db.models import BooleanField, F, Q
    from django.db.models.expressions import RawSQL
    from django.utils import timezone

    from vouchers import selectors
    from vouchers.models import Batch, Code, Product
    from vouchers.services import issuance

    def execution_ms(plan: str) -> float:
        return float(re.search(r"Execution Time: ([0-9.]+) ms", plan).group(1))

    product = Product.objects.get(sku=INVENTORY_SKU)
    batch_id = Batch.objects.filter(product=product).values_list("pk", flat=True).first()
    sample = list(Code.objects.filter(batch_id=batch_id).order_by("?").values_list("blind_index", flat=True)
                  [:args.count])
    timings: dict[str, list[float]] = {"lookup": [], "batches": [], "lock": []}
    for blind_index in sample:
        now = timezone.now()
        timings["lookup"].append(execution_ms(
            Code.objects.select_related("batch__product").filter(blind_index__in=[bytes(blind_index)])
            .explain(analyze=True)
        ))
        timings["batches"].append(execution_ms(
            Batch.objects.filter(product=product).filter(selectors.sellable_batches_q(now))
            .filter(RawSQL(issuance._HAS_CLAIMABLE_CODE, [now], output_field=BooleanField()))  # noqa: S611
            .order_by(F("valid_until").asc(nulls_last=True), "pk").values_list("pk", flat=True)
            .explain(analyze=True)
        ))
        with transaction.atomic():
            timings["lock"].append(execution_ms(
                Code.objects.filter(batch_id=batch_id, state=Code.State.AVAILABLE)
                .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now)).order_by("pk")
                .select_for_update(skip_locked=True, of=("self",))[:1].explain(analyze=True)
            ))
            transaction.set_rollback(True)
    return {name: statistics.median(values) for name, values in timings.items()}
