"""The `data` of every webhook event type, one function each, next to the builder that sends them.

`outbox.emit` is the one builder: it decides who is subscribed, wraps the data in the
envelope (`id`, `type`, `created_at`, `data`) and writes the rows. The functions here
build only the `data` part, from the objects the event is about; `emit` calls them
(through the announcers: `outbox.issuance_changed`, `outbox.redemption_changed`,
`outbox.fraud_alert`, `stock_events`, `settlement_events`) only when someone
subscribes, so an unsubscribed event builds nothing.

- `issuance_data`: `issuance.issued`, `.review_approved`, `.review_denied`, `.expired`
- `redemption_data`: `code.redeemed`, `redemption.reversed`
- `stock_low_data`: `stock.low`; `codes_expiring_data`: `codes.expiring`
- `fraud_alert_data`: `fraud.alert`
- `statement_data`: `statement.issued`; `dispute_data`: `dispute.resolved`

docs/webhooks.md is the contract for these shapes: a change here changes what every
receiver parses. A code is always named by its id and last 4, never by its text.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.urls import reverse


def iso(moment: datetime) -> str:
    """A moment as the events write it: UTC, with a `Z` (microseconds only when there are some)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- sales ---------------------------------------------------------------------------


def issuance_data(issuance, codes: list) -> dict:
    return {
        "issuance": {
            "id": str(issuance.pk), "status": issuance.status, "sku": issuance.product.sku,
            "quantity": issuance.quantity, "customer": issuance.customer, "order_ref": issuance.order_ref,
        },
        "codes": [{"id": code.pk, "last4": code.last4} for code in sorted(codes, key=lambda c: c.pk)],
    }


def redemption_data(redemption) -> dict:
    code = redemption.code
    product = code.batch.product
    return {
        "redemption": {
            "id": str(redemption.pk), "order_ref": redemption.order_ref, "location": redemption.location,
            "redeemed_at": iso(redemption.redeemed_at),
            "reversed_at": iso(redemption.reversed_at) if redemption.reversed_at else None,
            "storefront_id": redemption.storefront_id, "partner_id": redemption.partner_id,
        },
        "code": {"id": code.pk, "last4": code.last4, "issuance_id": str(code.issuance_id)},
        "sku": product.sku, "face_value": str(product.face_value), "currency": product.currency,
    }


# --- the merchant's stock and alerts ---------------------------------------------------


def _product(product) -> dict:
    return {"sku": product.sku, "name": product.name}


def stock_low_data(product, *, available: int, threshold: int) -> dict:
    return {"product": _product(product), "available": available, "threshold": threshold}


def codes_expiring_data(batch, *, available: int) -> dict:
    return {
        "batch": {"id": batch.pk, "reference": batch.reference, "valid_until": iso(batch.valid_until)},
        "product": _product(batch.product),
        "available": available,
    }


# Fraud event context fields a storefront may receive (never a code: events hold none).
FRAUD_ALERT_FIELDS = (
    "batch_id", "code_id", "code_last4", "action", "reason", "scope", "storefront_id", "partner_id",
    "customer", "reasons",
)


def fraud_alert_data(event) -> dict:
    return {
        "fraud_event": {
            "id": event.pk, "kind": event.kind, "severity": event.severity, "decision": event.decision,
            "batch_id": event.batch_id,
            "context": {k: event.context[k] for k in FRAUD_ALERT_FIELDS if k in event.context},
        },
    }


# --- settlement (the partner's) ----------------------------------------------------------

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


def statement_data(statement) -> dict:
    return {"statement": _statement(statement), "links": statement_links(statement.pk)}


def dispute_data(dispute, *, statement) -> dict:
    from partners.canonical import iso as canonical_iso  # always with microseconds, as the partner API
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
            "opened_at": canonical_iso(dispute.created_at), "resolved_at": canonical_iso(dispute.resolved_at),
        },
        "statement": _statement(statement),
        "links": links,
    }
