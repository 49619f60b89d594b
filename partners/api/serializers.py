"""Input and output shapes of the partner API (money as strings with the currency's digits)."""

from __future__ import annotations

from rest_framework import serializers

from partners.canonical import iso
from partners.models import AgreementVersion, LedgerEntry, Statement
from partners.money import format_minor
from partners.services import statements as statement_service


class AgreementOutput(serializers.Serializer):
    id = serializers.IntegerField(help_text="The agreement version's id.")
    agreement_id = serializers.IntegerField()
    version = serializers.IntegerField()
    merchant = serializers.CharField()
    skus = serializers.ListField(child=serializers.CharField())
    basis = serializers.ChoiceField(choices=AgreementVersion.Basis.choices)
    direction = serializers.ChoiceField(choices=AgreementVersion.Direction.choices)
    unit_amount = serializers.CharField(allow_null=True)
    unit_amount_minor = serializers.IntegerField(allow_null=True)
    rate_bps = serializers.IntegerField(allow_null=True)
    currency = serializers.CharField()
    period = serializers.ChoiceField(choices=["weekly", "monthly"])
    timezone = serializers.CharField()
    valid_from = serializers.DateTimeField()
    valid_until = serializers.DateTimeField(allow_null=True)
    dispute_window_days = serializers.IntegerField()


def agreement_row(version: AgreementVersion) -> dict:
    agreement = version.agreement
    unit = version.unit_amount_minor
    return {
        "id": version.pk,
        "agreement_id": agreement.pk,
        "version": version.number,
        "merchant": agreement.merchant.slug,
        "skus": sorted(p.sku for p in version.products.all()),
        "basis": version.basis,
        "direction": version.direction,
        "unit_amount": None if unit is None else format_minor(unit, agreement.currency),
        "unit_amount_minor": unit,
        "rate_bps": version.rate_bps,
        "currency": agreement.currency,
        "period": agreement.period,
        "timezone": agreement.timezone,
        "valid_from": iso(version.valid_from),
        "valid_until": iso(version.valid_until),
        "dispute_window_days": agreement.dispute_window_days,
    }


class StatementOutput(serializers.Serializer):
    id = serializers.UUIDField()
    number = serializers.IntegerField()
    merchant = serializers.CharField()
    currency = serializers.CharField()
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    timezone = serializers.CharField()
    status = serializers.ChoiceField(choices=["issued", "confirmed", "disputed", "resolved"])
    payment_status = serializers.ChoiceField(choices=["unpaid", "partially_paid", "paid"])
    opening_balance = serializers.CharField()
    total = serializers.CharField()
    closing_balance = serializers.CharField()
    opening_minor = serializers.IntegerField()
    total_minor = serializers.IntegerField()
    closing_minor = serializers.IntegerField()
    line_count = serializers.IntegerField()
    issued_at = serializers.DateTimeField()
    dispute_deadline = serializers.DateTimeField()
    content_sha256 = serializers.CharField()
    previous_statement_sha256 = serializers.CharField(allow_null=True)


def statement_row(statement: Statement) -> dict:
    c = statement.currency
    return {
        "id": str(statement.pk),
        "number": statement.number,
        "merchant": statement.merchant.slug,
        "currency": c,
        "period_start": iso(statement.period_start),
        "period_end": iso(statement.period_end),
        "timezone": statement.timezone,
        "status": statement_service.lifecycle_status(statement),
        "payment_status": statement_service.payment_status(statement),
        "opening_balance": format_minor(statement.opening_minor, c),
        "total": format_minor(statement.total_minor, c),
        "closing_balance": format_minor(statement.closing_minor, c),
        "opening_minor": statement.opening_minor,
        "total_minor": statement.total_minor,
        "closing_minor": statement.closing_minor,
        "line_count": statement.line_count,
        "issued_at": iso(statement.issued_at),
        "dispute_deadline": iso(statement.dispute_deadline),
        "content_sha256": statement.content_sha256,
        "previous_statement_sha256": statement.previous_sha256 or None,
    }


class LineOutput(serializers.Serializer):
    line_no = serializers.IntegerField()
    entry_id = serializers.IntegerField()
    seq = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=LedgerEntry.Kind.choices)
    occurred_at = serializers.DateTimeField()
    recorded_at = serializers.DateTimeField()
    sku = serializers.CharField()
    source_type = serializers.CharField()
    source_id = serializers.CharField()
    code_last4 = serializers.CharField()
    amount = serializers.CharField()
    amount_minor = serializers.IntegerField()
    currency = serializers.CharField()
    reverses = serializers.IntegerField(allow_null=True)
    original_statement = serializers.UUIDField(allow_null=True)
    entry_hash = serializers.CharField()


class LedgerEntryOutput(LineOutput):
    line_no = None  # type: ignore[assignment]  # DRF: removes the inherited field
    statement = serializers.UUIDField(allow_null=True)
    prev_hash = serializers.CharField()


def ledger_row(entry: LedgerEntry) -> dict:
    line = getattr(entry, "line", None)
    return {
        "seq": entry.seq,
        "entry_id": entry.pk,
        "kind": entry.kind,
        "occurred_at": iso(entry.occurred_at),
        "recorded_at": iso(entry.recorded_at),
        "sku": entry.sku,
        "source_type": entry.source_type,
        "source_id": entry.source_id,
        "code_last4": entry.code_last4,
        "amount": format_minor(entry.amount_minor, entry.currency),
        "amount_minor": entry.amount_minor,
        "currency": entry.currency,
        "reverses": entry.reverses_id,
        "original_statement": str(line.original_statement_id)
        if line and line.original_statement_id
        else None,
        "statement": str(line.statement_id) if line else None,
        "entry_hash": entry.hash,
        "prev_hash": entry.prev_hash,
    }


class ConfirmInput(serializers.Serializer):
    content_sha256 = serializers.RegexField(r"^[0-9a-f]{64}$")


class DisputeInput(serializers.Serializer):
    reason = serializers.CharField(max_length=1000)
    lines = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, default=list, max_length=10000
    )
    claimed_amount = serializers.RegexField(r"^-?\d{1,15}(\.\d{1,4})?$", required=False)


class DisputeOutput(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    statement = serializers.UUIDField()
    reason = serializers.CharField()
    lines = serializers.ListField(child=serializers.IntegerField())
    claimed_amount = serializers.CharField(allow_null=True)
    claimed_amount_minor = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()


class ReconcileGroup(serializers.Serializer):
    count = serializers.IntegerField()
    rows = serializers.ListField(child=serializers.DictField())


class ReconcileOutput(serializers.Serializer):
    matched = ReconcileGroup()
    missing = ReconcileGroup()
    unexpected = ReconcileGroup()
    mismatched = ReconcileGroup()


class KeyOutput(serializers.Serializer):
    kty = serializers.CharField()
    crv = serializers.CharField()
    kid = serializers.CharField()
    x = serializers.CharField()
    use = serializers.CharField()
    alg = serializers.CharField()


class KeysOutput(serializers.Serializer):
    keys = KeyOutput(many=True)
