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
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from config import metrics
from vouchers.webhooks.models import WebhookEvent
from vouchers.webhooks.services.outbox import emit

STATEMENT_LINKS = (
    ("statement", "partner-api:statement"),
    ("lines", "partner-api:statement-lines"),
    ("lines_csv", "partner-api:statement-csv"),
    ("document", "partner-api:statement-document"),
    ("confirm", "partner-api:statement-confirm"),
    ("disputes", "partner-api:statement-disputes"),
)


def _absolute(path: str) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + path


def statement_links(statement_id) -> dict[str, str]:
    links = {name: _absolute(reverse(route, args=[statement_id])) for name, route in STATEMENT_LINKS}
    links["keys"] = _absolute(reverse("partner-api:keys"))
    return links


def _statement(statement) -> dict:
    from partners.api.serializers import statement_row  # the partner API's shape, exactly

    return statement_row(statement)


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
        data=lambda: {"statement": _statement(statement), "links": statement_links(statement.pk)},
    )


def dispute_resolved(dispute, *, statement) -> WebhookEvent | None:
    """A dispute was accepted or rejected: tell the statement's partner.

    Call inside the resolution's transaction, after the statement's own status was
    recorded (`resolved` once no dispute of it is open, else still `disputed`).
    """
    return emit(
        "dispute.resolved", owners=[("partner", statement.partner_id)], merchant_id=statement.merchant_id,
        ordering_key=f"statement:{statement.pk}",
        data=lambda: dispute_data(dispute, statement=statement),
    )


def dispute_data(dispute, *, statement) -> dict:
    from partners.canonical import iso
    from partners.money import format_minor

    currency = statement.currency
    claimed = dispute.claimed_amount_minor
    adjustment = None
    links = statement_links(statement.pk)
    if dispute.adjustment_id is not None:
        entry = dispute.adjustment
        adjustment = {
            "entry_id": entry.pk, "seq": entry.seq, "amount": format_minor(entry.amount_minor, currency),
            "amount_minor": entry.amount_minor, "currency": currency,
        }
        # The adjustment lands on a later statement; until then it is in the ledger feed.
        links["ledger"] = _absolute(reverse("partner-api:ledger")) + f"?after={entry.seq - 1}"
    return {
        "dispute": {
            "id": str(dispute.pk), "statement_id": str(statement.pk), "status": dispute.status,
            "reason": dispute.reason, "lines": list(dispute.lines),
            "claimed_amount": format_minor(claimed, currency) if claimed is not None else None,
            "claimed_amount_minor": claimed, "currency": currency,
            "resolution_reason": dispute.resolution_reason, "adjustment": adjustment,
            "opened_at": iso(dispute.created_at), "resolved_at": iso(dispute.resolved_at),
        },
        "statement": _statement(statement),
        "links": links,
    }
