"""Correctness checks after the flash sale and the covered-redemption ledger (child steps)."""

from __future__ import annotations

import argparse

from bench.api.common import COVERED_SKU, FLASH_ATTEMPTS, FLASH_CODES
from bench.api.data import bench_caller


def step_count_ledger(args: argparse.Namespace) -> dict:
    """Ledger entries of the covered product, and whether each partner's chain holds."""
    from partners.models import LedgerEntry
    from partners.services.ledger import verify_chain

    entries = LedgerEntry.objects.filter(sku=COVERED_SKU)
    partners = set(entries.values_list("partner_id", flat=True))
    chains_hold = all(verify_chain(partner_id=p) is None for p in partners)
    return {"entries": entries.count(), "chains_hold": chains_hold}


def step_verify_flash(args: argparse.Namespace) -> dict:
    """After a flash sale: exactly 1,000 issued, no code twice, counts add up, every key answered."""
    from django.db.models import Count, Sum

    from vouchers import selectors
    from vouchers.models import Batch, Code, CodeEvent, IdempotencyRecord, Issuance

    batch = Batch.objects.get(product__sku=args.sku)
    issued_codes = Code.objects.filter(batch=batch, state=Code.State.ISSUED)
    issuances = Issuance.objects.filter(product__sku=args.sku)
    issued_events = CodeEvent.objects.filter(batch=batch, action="issued")
    counted = selectors.counted_stock_by_state(batch.pk)
    counters = selectors.stock_by_state([batch.pk])[batch.pk]
    records = IdempotencyRecord.objects.filter(caller=bench_caller().identity,
                                               key__startswith=f"{args.label}-")
    by_status = dict(records.values_list("response_status").annotate(n=Count("id")).order_by())
    checks = {
        "issued": issued_codes.count(),
        "issuances": issuances.count(),
        "idempotency_records_by_status": {str(k): v for k, v in by_status.items()},
    }
    checks["exactly_1000_issued"] = checks["issued"] == FLASH_CODES and counted["available"] == 0
    checks["one_issuance_per_code"] = (
        issuances.filter(status=Issuance.Status.ISSUED).count() == FLASH_CODES
        and (issuances.aggregate(q=Sum("quantity"))["q"] or 0) == FLASH_CODES
        and issued_codes.values("issuance_id").distinct().count() == FLASH_CODES
        and not issued_codes.values("issuance_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    )
    checks["no_code_issued_twice"] = (
        issued_events.count() == FLASH_CODES
        and issued_events.values("code_id").distinct().count() == FLASH_CODES
    )
    checks["counts_add_up"] = counted == counters and sum(counted.values()) == batch.size
    checks["every_attempt_recorded"] = (
        records.count() == args.attempts and by_status.get(201) == FLASH_CODES
        and by_status.get(409) == args.attempts - FLASH_CODES
    )
    return checks


def flash_checks(summary: dict, checks: dict) -> dict:
    """Add wrk's side to the database checks of a flash sale (step_verify_flash): no 5xx,
    only 201 or 409, every attempt sent and answered; `ok` when every check holds."""
    summary["checks"] = checks
    summary["checks"]["no_5xx"] = summary["5xx"] == 0
    summary["checks"]["only_201_or_409"] = summary["non_2xx_or_409"] == 0
    summary["checks"]["all_answered"] = (
        summary["sent"] == FLASH_ATTEMPTS and summary["received"] == FLASH_ATTEMPTS
        and summary["socket_errors"] == 0
    )
    summary["checks"]["ok"] = all(v for k, v in summary["checks"].items() if isinstance(v, bool))
    return summary["checks"]
