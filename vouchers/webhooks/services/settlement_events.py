"""`statement.issued` and `dispute.resolved`: settlement news for the partner.

Each is emitted by the settlement service inside the transaction of its cause (the
statement's close, the dispute's resolution), so it commits or rolls back with it.
An issued statement is also counted in the business metrics once the close commits.

They go to the partner's endpoints only. The merchant's side of both is its own
staff's work in the admin (statements are closed by beat, command or admin and read
there; disputes are resolved there), and a storefront key cannot follow the links in
these payloads (the partner paths answer it 404), so a storefront endpoint would only
receive news about its own merchant it cannot act on.

A payload names money as the partner API does (a decimal string with the currency's
digits, and `*_minor` integers), the statement by id and `content_sha256` (what a
confirmation pins), and absolute links (`PUBLIC_BASE_URL`) to fetch and verify it.
Statement lines are not in it (there can be many): fetch them. Never a code.
Both payloads are built in `payloads` (`statement_data`, `dispute_data`).
"""

from __future__ import annotations

from django.db import transaction

from config import metrics
from vouchers.webhooks.models import WebhookEvent
from vouchers.webhooks.services import payloads
from vouchers.webhooks.services.outbox import emit


def statement_issued(statement) -> WebhookEvent | None:
    """A statement was closed: tell its partner, and count it. Call inside the close's transaction.

    The webhook is written in the transaction; the business counters
    (`vouchers_statements_issued`, `vouchers_statement_total_minor_units`, by currency)
    move once it commits, so a rolled-back close counts nothing.
    """
    currency, total = statement.currency, abs(statement.total_minor)

    def count_after_commit() -> None:
        metrics.STATEMENTS_ISSUED.labels(currency=currency).inc()
        metrics.STATEMENT_TOTALS.labels(currency=currency).inc(total)

    transaction.on_commit(count_after_commit)
    return emit(
        "statement.issued", owners=[("partner", statement.partner_id)], merchant_id=statement.merchant_id,
        ordering_key=f"statement:{statement.pk}",
        data=lambda: payloads.statement_data(statement),
    )


def dispute_resolved(dispute, *, statement) -> WebhookEvent | None:
    """A dispute was accepted or rejected: tell the statement's partner.

    Call inside the resolution's transaction, after the statement's own status was
    recorded (`resolved` once no dispute of it is open, else still `disputed`).
    """
    return emit(
        "dispute.resolved", owners=[("partner", statement.partner_id)], merchant_id=statement.merchant_id,
        ordering_key=f"statement:{statement.pk}",
        data=lambda: payloads.dispute_data(dispute, statement=statement),
    )
