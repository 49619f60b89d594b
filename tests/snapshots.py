"""A picture of everything a request could change, to assert that a refusal changed nothing."""

from __future__ import annotations

from vouchers.models import Code, CodeEvent, Issuance, Redemption, StockCounter


def world() -> dict:
    return {
        "codes": sorted(Code.objects.values_list("pk", "state", "issuance_id", "redeemed_at")),
        "issuances": sorted(Issuance.objects.values_list("pk", "status", "reserved_until")),
        "redemptions": sorted(Redemption.objects.values_list("pk", "reversed_at")),
        "events": CodeEvent.objects.count(),
        "counters": sorted(StockCounter.objects.values_list("batch_id", "state", "shard", "count")),
    }
