"""Creating a batch and finishing a load of codes into it (shared by generation and import)."""

from __future__ import annotations

from datetime import datetime

from django.utils.translation import gettext_lazy as _

from vouchers.exceptions import InvalidBatchSettings
from vouchers.models import Batch, Product
from vouchers.services import stock
from vouchers.services.events import actor_for_user, record_event


def start_batch(
    *, product: Product, source: str, case_sensitive: bool, valid_from: datetime | None,
    valid_until: datetime | None, created_by=None, reference: str = "", fmt: dict | None = None,
) -> Batch:
    """Create the batch row that codes will reference. Raises InvalidBatchSettings."""
    if valid_from and valid_until and valid_until <= valid_from:
        raise InvalidBatchSettings(_("the validity window ends before it starts"))
    return Batch.objects.create(
        product=product, source=source, case_sensitive=case_sensitive, valid_from=valid_from,
        valid_until=valid_until, created_by=created_by, reference=reference[:200],
        format=fmt or {},
    )


def finish_batch(*, batch: Batch, loaded: int, created_by=None, details: dict | None = None) -> Batch:
    """Record the batch's size, its stock counters and the event that says it was loaded."""
    batch.size = loaded
    batch.save(update_fields=["size"])
    stock.create_counters(batch_id=batch.pk, available=loaded)
    record_event(
        action=f"batch_{batch.source}", actor=actor_for_user(created_by), batch_id=batch.pk,
        to_state="available", details={"count": loaded, **(details or {})},
    )
    return batch
