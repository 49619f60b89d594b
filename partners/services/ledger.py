"""The settlement ledger: every priced event appends one entry, in the caller's transaction.

Called by the vouchers services right after the effect (codes issued, a code
redeemed, a redemption reversed), inside their transaction, so the entry commits or
rolls back with the event. Nothing else writes the ledger but the settlement
services (adjustments, payments).

- Every agreement version in force that covers the product and has the event's
  basis prices it: one entry per version (several partners may be paid for one event).
- The price is rounded once, half-even, to the currency's exponent; a reversal is
  the exact negation of the original entries, never recomputed.
- Each partner's entries carry a sequence number and a SHA-256 hash chained to the
  previous entry. The partner's chain head row is locked while appending; heads are
  locked in partner order, so two events touching the same partners never deadlock.
- `source_key` is unique: one source event prices once per agreement version. After
  the head lock is taken, keys already written (by a concurrent or repeated call) are
  skipped, so a repeat returns nothing new instead of failing the caller.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from config import versions
from partners.canonical import canonical, iso, sha256_hex
from partners.models import AgreementVersion, LedgerEntry, LedgerHead
from partners.money import price_minor

GENESIS_HASH = "0" * 64


@dataclass
class PendingEntry:
    """An entry before it gets its place in the partner's chain."""

    partner_id: int
    merchant_id: int
    agreement_id: int
    kind: str
    currency: str
    amount_minor: int
    source_type: str
    source_id: str
    source_key: str
    occurred_at: datetime
    agreement_version_id: int | None = None
    sku: str = ""
    code_last4: str = ""
    reverses_id: int | None = None
    refers_to_statement_id: object = None
    memo: str = ""
    actor: str = ""
    extra: dict = field(default_factory=dict)


def entry_hash_payload(entry: LedgerEntry) -> dict:
    """The fields an entry's hash covers (everything but the hash itself)."""
    return {
        "seq": entry.seq,
        "prev_hash": entry.prev_hash,
        "partner": entry.partner_id,
        "merchant": entry.merchant_id,
        "agreement": entry.agreement_id,
        "agreement_version": entry.agreement_version_id,
        "kind": entry.kind,
        "currency": entry.currency,
        "amount_minor": entry.amount_minor,
        "source_type": entry.source_type,
        "source_id": entry.source_id,
        "source_key": entry.source_key,
        "sku": entry.sku,
        "code_last4": entry.code_last4,
        "reverses": entry.reverses_id,
        "refers_to_statement": str(entry.refers_to_statement_id) if entry.refers_to_statement_id else None,
        "memo": entry.memo,
        "occurred_at": iso(entry.occurred_at),
        "recorded_at": iso(entry.recorded_at),
    }


def entry_hash(entry: LedgerEntry) -> str:
    return sha256_hex(canonical(entry_hash_payload(entry)))


# The versions covering each (product, basis) of a merchant, whatever their validity,
# held in process while the merchant's `agreements` version is current (config/versions.py):
# a covered or uncovered write pays no look-up. Bumped by every service and admin path
# that changes an agreement or a version (partners/services/agreements.py, partners/admin.py).
_COVERING = versions.VersionedCache(versions.AGREEMENTS)


def versions_in_force(
    *, product_id: int, merchant_id: int, basis: str, at: datetime
) -> list[AgreementVersion]:
    """Every agreement version covering the product with this basis at that moment.

    One query, or none inside an API request whose cached copy is current; the
    validity is filtered here, so a copy stays right as time passes.
    """
    covering = _COVERING.get_or_load(
        merchant_id, (product_id, basis),
        lambda: _covering(product_id=product_id, merchant_id=merchant_id, basis=basis),
    )
    return [v for v in covering if v.valid_from <= at and (v.valid_until is None or v.valid_until > at)]


def _covering(*, product_id: int, merchant_id: int, basis: str) -> tuple[AgreementVersion, ...]:
    return tuple(
        AgreementVersion.objects.filter(products=product_id, basis=basis, agreement__merchant_id=merchant_id)
        .select_related("agreement")
        .order_by("agreement__partner_id", "pk")
    )


def _priced(
    version: AgreementVersion,
    *,
    product,
    kind: str,
    source_type: str,
    source_id: str,
    occurred_at: datetime,
    code_last4: str,
    actor: str,
) -> PendingEntry:
    agreement = version.agreement
    unsigned = price_minor(
        face_value=product.face_value,
        face_currency=product.currency,
        unit_amount_minor=version.unit_amount_minor,
        rate_bps=version.rate_bps,
        currency=agreement.currency,
    )
    return PendingEntry(
        partner_id=agreement.partner_id,
        merchant_id=agreement.merchant_id,
        agreement_id=agreement.pk,
        agreement_version_id=version.pk,
        kind=kind,
        currency=agreement.currency,
        amount_minor=version.sign * unsigned,
        source_type=source_type,
        source_id=source_id,
        source_key=f"{source_type}:{source_id}:v{version.pk}",
        occurred_at=occurred_at,
        sku=product.sku,
        code_last4=code_last4,
        actor=actor,
    )


def append(pending: Iterable[PendingEntry]) -> list[LedgerEntry]:
    """Write entries into their partners' chains; skips a source key already written.

    Must run inside a transaction (the caller's). Locks each partner's chain head in
    partner order, assigns seq and hash, inserts, moves the head.
    """
    by_partner: dict[int, list[PendingEntry]] = defaultdict(list)
    for item in pending:
        by_partner[item.partner_id].append(item)
    if not by_partner:
        return []
    partner_ids = sorted(by_partner)
    LedgerHead.objects.bulk_create([LedgerHead(partner_id=p) for p in partner_ids], ignore_conflicts=True)
    heads = {
        head.partner_id: head
        for head in LedgerHead.objects.select_for_update()
        .filter(partner_id__in=partner_ids)
        .order_by("partner_id")
    }
    keys = [item.source_key for items in by_partner.values() for item in items]
    written = set(LedgerEntry.objects.filter(source_key__in=keys).values_list("source_key", flat=True))
    now = timezone.now()
    created: list[LedgerEntry] = []
    for partner_id in partner_ids:
        head = heads[partner_id]
        seq, prev = head.seq, head.hash
        for item in by_partner[partner_id]:
            if item.source_key in written:
                continue
            written.add(item.source_key)
            seq += 1
            entry = LedgerEntry(
                partner_id=partner_id,
                merchant_id=item.merchant_id,
                agreement_id=item.agreement_id,
                agreement_version_id=item.agreement_version_id,
                seq=seq,
                kind=item.kind,
                currency=item.currency,
                amount_minor=item.amount_minor,
                source_type=item.source_type,
                source_id=item.source_id,
                source_key=item.source_key,
                sku=item.sku,
                code_last4=item.code_last4,
                reverses_id=item.reverses_id,
                refers_to_statement_id=item.refers_to_statement_id,
                memo=item.memo,
                actor=item.actor,
                occurred_at=item.occurred_at,
                recorded_at=now,
                prev_hash=prev,
            )
            entry.hash = entry_hash(entry)
            prev = entry.hash
            created.append(entry)
        if seq != head.seq:
            LedgerHead.objects.filter(pk=partner_id).update(seq=seq, hash=prev)
    LedgerEntry.objects.bulk_create(created)
    return created


# --- the touch points called by the vouchers services ------------------------------


def record_issuance(
    *, issuance, codes, product, at: datetime | None = None, actor: str = ""
) -> list[LedgerEntry]:
    """Price codes that just became issued (issue, confirm, review approval): one entry per
    code and covering version. Call inside the issuing transaction."""
    at = at or timezone.now()
    versions = versions_in_force(
        product_id=product.pk, merchant_id=product.merchant_id, basis="issued", at=at
    )
    if not versions:
        return []
    return append(
        _priced(
            version,
            product=product,
            kind=LedgerEntry.Kind.ACCRUAL,
            source_type="issued_code",
            source_id=f"{issuance.pk}:{code.pk}",
            occurred_at=at,
            code_last4=code.last4,
            actor=actor,
        )
        for code in codes
        for version in versions
    )


def record_redemption(*, redemption, product, code_last4: str, actor: str = "") -> list[LedgerEntry]:
    """Price a redemption under every covering version. Call inside the redeeming transaction."""
    at = redemption.redeemed_at
    versions = versions_in_force(
        product_id=product.pk, merchant_id=product.merchant_id, basis="redeemed", at=at
    )
    if not versions:
        return []
    return append(
        _priced(
            version,
            product=product,
            kind=LedgerEntry.Kind.ACCRUAL,
            source_type="redemption",
            source_id=str(redemption.pk),
            occurred_at=at,
            code_last4=code_last4,
            actor=actor,
        )
        for version in versions
    )


def record_reversal(*, redemption, actor: str = "") -> list[LedgerEntry]:
    """Negate exactly the entries a redemption produced. Call inside the reversing transaction."""
    originals = list(
        LedgerEntry.objects.filter(
            source_type="redemption", source_id=str(redemption.pk), kind=LedgerEntry.Kind.ACCRUAL
        ).order_by("partner_id", "seq")
    )
    if not originals:
        return []
    at = redemption.reversed_at or timezone.now()
    return append(
        PendingEntry(
            partner_id=o.partner_id,
            merchant_id=o.merchant_id,
            agreement_id=o.agreement_id,
            agreement_version_id=o.agreement_version_id,
            kind=LedgerEntry.Kind.REVERSAL,
            currency=o.currency,
            amount_minor=-o.amount_minor,
            source_type="redemption_reversal",
            source_id=str(redemption.pk),
            source_key=f"reversal:{o.pk}",
            occurred_at=at,
            sku=o.sku,
            code_last4=o.code_last4,
            reverses_id=o.pk,
            actor=actor,
        )
        for o in originals
    )


def verify_chain(*, partner_id: int) -> int | None:
    """The seq of the first entry whose hash or link is wrong, or None when the chain holds."""
    prev = GENESIS_HASH
    expected_seq = 1
    for entry in LedgerEntry.objects.filter(partner_id=partner_id).order_by("seq").iterator():
        if entry.seq != expected_seq or entry.prev_hash != prev or entry_hash(entry) != entry.hash:
            return entry.seq
        prev, expected_seq = entry.hash, expected_seq + 1
    return None
