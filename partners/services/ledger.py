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

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache

from django.db import connection
from django.utils import timezone

from config import precommit, prepared, versions
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
    refers_to_statement_id: uuid.UUID | None = None
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


def hash_frame(item: PendingEntry, recorded_at: datetime) -> tuple[str, str, str]:
    """`entry_hash`'s canonical JSON around the two values only the chain head gives.

    `before + prev_hash + between + str(seq) + after` is byte for byte
    `canonical(entry_hash_payload(entry))` (the keys in RFC 8785 order; strings escaped
    as RFC 8785 does, which is what `json.dumps(ensure_ascii=False)` does too: the same
    escapes, lowercase hex), so the database can hash an entry once it holds the head
    (PostgreSQL's `sha256`) and `verify_chain` recomputes the same hash.
    """
    text, number = _json_text, _json_int
    statement = item.refers_to_statement_id
    before = (
        f'{{"agreement":{number(item.agreement_id)},"agreement_version":{number(item.agreement_version_id)},'
        f'"amount_minor":{number(item.amount_minor)},"code_last4":{text(item.code_last4)},'
        f'"currency":{text(item.currency)},"kind":{text(item.kind)},"memo":{text(item.memo)},'
        f'"merchant":{number(item.merchant_id)},"occurred_at":{text(iso(item.occurred_at))},'
        f'"partner":{number(item.partner_id)},"prev_hash":"'
    )
    between = (
        f'","recorded_at":{text(iso(recorded_at))},'
        f'"refers_to_statement":{text(str(statement)) if statement else "null"},'
        f'"reverses":{number(item.reverses_id)},"seq":'
    )
    after = (
        f',"sku":{text(item.sku)},"source_id":{text(item.source_id)},"source_key":{text(item.source_key)},'
        f'"source_type":{text(item.source_type)}}}'
    )
    return before, between, after


def _json_text(value: str | None) -> str:
    return "null" if value is None else json.dumps(value, ensure_ascii=False)


def _json_int(value: int | None) -> str:
    # RFC 8785 refuses integers beyond 2**53 - 1; canonical() raises the same error here
    return "null" if value is None else canonical(value).decode() if abs(value) > 2**53 - 1 else str(value)


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


def append(pending: Iterable[PendingEntry], *, fresh: bool = False) -> list[LedgerEntry]:
    """Write entries into their partners' chains; skips a source key already written.

    Must run inside a transaction (the caller's). Locks each partner's chain head in
    partner order, assigns seq and hash, inserts, moves the head.

    `fresh`: every source was created in this transaction (a redemption, an issuance),
    so no other transaction can have priced it and the look-up of written keys is
    skipped (the unique `source_key` stays the backstop).
    The head lock serialises a partner's entries, so the less runs while it is held,
    the more covered requests a partner can take per second. On PostgreSQL a fresh
    append of one entry per partner (a redemption) is one prepared statement that
    locks the heads, hashes and inserts the entries and moves the heads
    (`_chain_in_database`); any other append locks the heads in one statement and
    writes the entries and moves the heads in one more.
    """
    items = list(pending)
    if fresh and _one_per_partner(items):
        now = timezone.now()
        return [
            _entry(item, pk=pk, seq=seq, prev_hash=prev_hash, hash_=hash_, recorded_at=now)
            for item, (pk, seq, prev_hash, hash_) in zip(items, _chain_in_database(items, now), strict=True)
        ]
    return _append(items, fresh=fresh)


def _write_fresh(items: list[PendingEntry]) -> None:
    """`append(items, fresh=True)` without building the entries for the caller (a deferred step)."""
    if _one_per_partner(items):
        _chain_in_database(items, timezone.now())
    else:
        _append(items, fresh=True)


def _one_per_partner(items: list[PendingEntry]) -> bool:
    return connection.vendor == "postgresql" and len({item.partner_id for item in items}) == len(items) > 0


def _append(pending: list[PendingEntry], *, fresh: bool) -> list[LedgerEntry]:
    by_partner: dict[int, list[PendingEntry]] = defaultdict(list)
    for item in pending:
        by_partner[item.partner_id].append(item)
    if not by_partner:
        return []
    partner_ids = sorted(by_partner)
    heads = _lock_heads(partner_ids)
    keys = [item.source_key for items in by_partner.values() for item in items]
    written = set() if fresh else set(
        LedgerEntry.objects.filter(source_key__in=keys).values_list("source_key", flat=True)
    )
    now = timezone.now()
    created: list[LedgerEntry] = []
    moved: dict[int, tuple[int, str]] = {}
    for partner_id in partner_ids:
        seq, prev = heads[partner_id]
        for item in by_partner[partner_id]:
            if item.source_key in written:
                continue
            written.add(item.source_key)
            seq += 1
            entry = _entry(item, pk=None, seq=seq, prev_hash=prev, hash_="", recorded_at=now)
            entry.hash = entry_hash(entry)
            prev = entry.hash
            created.append(entry)
        if seq != heads[partner_id][0]:
            moved[partner_id] = (seq, prev)
    if connection.vendor == "postgresql":
        _write_and_move(created, moved)
    else:
        for partner_id, (seq, prev) in moved.items():
            LedgerHead.objects.filter(pk=partner_id).update(seq=seq, hash=prev)
        LedgerEntry.objects.bulk_create(created)
    return created


def _entry(
    item: PendingEntry, *, pk: int | None, seq: int, prev_hash: str, hash_: str, recorded_at: datetime
) -> LedgerEntry:
    fields = {name: value for name, value in vars(item).items() if name != "extra"}
    entry = LedgerEntry(
        pk=pk, seq=seq, prev_hash=prev_hash, hash=hash_, recorded_at=recorded_at, **fields
    )
    if pk is not None:
        entry._state.adding, entry._state.db = False, connection.alias
    return entry


_HEAD, _ENTRY = LedgerHead._meta.db_table, LedgerEntry._meta.db_table

# What Python knows of an entry before it holds the head, with each column's type, in
# the order `_chain_in_database` sends them; then the three parts of its hash frame.
_KNOWN = (
    ("partner_id", "bigint"), ("merchant_id", "bigint"), ("agreement_id", "bigint"),
    ("agreement_version_id", "bigint"), ("kind", "text"), ("currency", "text"), ("amount_minor", "bigint"),
    ("source_type", "text"), ("source_id", "text"), ("source_key", "text"), ("sku", "text"),
    ("code_last4", "text"), ("reverses_id", "bigint"), ("refers_to_statement_id", "uuid"), ("memo", "text"),
    ("actor", "text"), ("occurred_at", "timestamptz"), ("recorded_at", "timestamptz"),  # recorded_at last
)


@cache
def _chain_sql(rows: int) -> str:
    """The one statement of a fresh append of `rows` entries, one per partner.

    Heads are locked in partner order (FOR UPDATE in READ COMMITTED gives the head as
    its last writer committed it); an entry's seq is its head's + 1 and its hash the
    SHA-256 of its canonical JSON (`hash_frame`) with the head's hash and that seq in
    place; the heads move to the new entries. If a head is missing (a partner's first
    entry) the statement writes nothing and returns no row.
    """
    column = {f.attname: f.column for f in LedgerEntry._meta.concrete_fields}
    row = "(" + ", ".join(f"%s::{kind}" for _, kind in _KNOWN) + ", %s::text, %s::text, %s::text)"
    columns = ", ".join(column[name] for name, _ in _KNOWN)
    seq, prev_hash, hash_ = column["seq"], column["prev_hash"], column["hash"]
    return prepared.compact(f"""
        WITH pending ({columns}, frame_before, frame_between, frame_after) AS (
            VALUES {", ".join([row] * rows)}
        ), head AS (
            SELECT h.partner_id, h.seq, h.hash FROM {_HEAD} AS h
             WHERE h.partner_id IN (SELECT partner_id FROM pending)
             ORDER BY h.partner_id FOR UPDATE
        ), entry AS (
            SELECT p.*, head.seq + 1 AS new_seq, head.hash AS new_prev_hash,
                   encode(sha256(convert_to(
                       p.frame_before || head.hash || p.frame_between || (head.seq + 1)::text
                       || p.frame_after,
                       'UTF8')), 'hex') AS new_hash
              FROM pending AS p JOIN head ON head.partner_id = p.partner_id
             WHERE (SELECT count(*) FROM head) = {rows:d}
        ), inserted AS (
            INSERT INTO {_ENTRY} ({columns}, {seq}, {prev_hash}, {hash_})
            SELECT {columns}, new_seq, new_prev_hash, new_hash FROM entry
            RETURNING id, partner_id, {seq}, {prev_hash}, {hash_}
        ), moved AS (
            UPDATE {_HEAD} AS h SET seq = inserted.{seq}, hash = inserted.{hash_}
              FROM inserted WHERE h.partner_id = inserted.partner_id
            RETURNING 1
        )
        SELECT partner_id, id, {seq}, {prev_hash}, {hash_}, (SELECT count(*) FROM moved) FROM inserted
    """)  # noqa: S608  (table and column names from the models; every value is a parameter)


def _chain_in_database(items: list[PendingEntry], now: datetime) -> list[tuple[int, int, str, str]]:
    """PostgreSQL, a fresh append of one entry per partner in one statement (`_chain_sql`):
    (pk, seq, prev_hash, hash) of each entry, in the order of `items`."""
    params: list = []
    for item in items:
        params += [getattr(item, name) for name, _ in _KNOWN[:-1]]
        params += [now, *hash_frame(item, now)]
    sql = _chain_sql(len(items))
    with prepared.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
        if not rows:  # a partner's first entry: create its head, then the same statement again
            _create_heads(sorted(item.partner_id for item in items))
            cursor.execute(sql, params)
            rows = cursor.fetchall()
    if len(rows) != len(items) or rows[0][5] != len(items):
        raise RuntimeError(f"ledger: {len(rows)} of {len(items)} entries written, heads moved {rows}")
    written = {partner_id: (pk, seq, prev_hash, hash_) for partner_id, pk, seq, prev_hash, hash_, _ in rows}
    return [written[item.partner_id] for item in items]


_ENTRY_FIELDS = [f for f in LedgerEntry._meta.concrete_fields if not f.primary_key]
# Table and column names from the models; every value is a parameter.
_LOCK_HEADS_SQL = (
    f"SELECT partner_id, seq, hash FROM {_HEAD} WHERE partner_id = ANY(%s) "  # noqa: S608
    "ORDER BY partner_id FOR UPDATE"
)


def _lock_heads(partner_ids: list[int]) -> dict[int, tuple[int, str]]:
    """{partner: (seq, hash)} of the chain heads, locked in partner order (no deadlock
    between two appends); a partner's first entry creates its head."""
    if connection.vendor != "postgresql":
        _create_heads(partner_ids)
        return {
            head.partner_id: (head.seq, head.hash)
            for head in LedgerHead.objects.select_for_update().filter(partner_id__in=partner_ids)
            .order_by("partner_id")
        }
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_HEADS_SQL, [partner_ids])
        heads = {partner_id: (seq, hash_) for partner_id, seq, hash_ in cursor.fetchall()}
        if len(heads) < len(partner_ids):  # a partner's first entry: create its head, lock again
            _create_heads(partner_ids)
            cursor.execute(_LOCK_HEADS_SQL, [partner_ids])
            heads = {partner_id: (seq, hash_) for partner_id, seq, hash_ in cursor.fetchall()}
    return heads


def _create_heads(partner_ids: list[int]) -> None:
    LedgerHead.objects.bulk_create([LedgerHead(partner_id=p) for p in partner_ids], ignore_conflicts=True)


def _write_and_move(created: list[LedgerEntry], moved: dict[int, tuple[int, str]]) -> None:
    """PostgreSQL: insert the entries and move their heads in one statement; sets the pks."""
    if not created:
        return
    columns = ", ".join(connection.ops.quote_name(f.column) for f in _ENTRY_FIELDS)
    row = "(" + ", ".join(["%s"] * len(_ENTRY_FIELDS)) + ")"
    params: list = [
        f.get_db_prep_save(f.pre_save(entry, True), connection) for entry in created for f in _ENTRY_FIELDS
    ]
    heads = ", ".join(["(%s::bigint, %s::bigint, %s)"] * len(moved))
    for partner_id, (seq, prev) in moved.items():
        params += [partner_id, seq, prev]
    sql = (
        f"WITH inserted AS (INSERT INTO {_ENTRY} ({columns}) VALUES {', '.join([row] * len(created))} "  # noqa: S608
        f"RETURNING id), moved AS (UPDATE {_HEAD} AS h SET seq = v.seq, hash = v.hash "
        f"FROM (VALUES {heads}) AS v(partner_id, seq, hash) WHERE h.partner_id = v.partner_id RETURNING 1) "
        "SELECT id, (SELECT count(*) FROM moved) FROM inserted"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if len(rows) != len(created) or rows[0][1] != len(moved):
        raise RuntimeError(f"ledger: {len(rows)} of {len(created)} entries written, heads moved {rows}")
    for entry, (pk, _) in zip(created, rows, strict=True):
        entry.pk = pk
        entry._state.adding, entry._state.db = False, connection.alias


# --- the touch points called by the vouchers services ------------------------------


def record_issuance(
    *, issuance, codes, product, at: datetime | None = None, actor: str = "", fresh: bool = False
) -> list[LedgerEntry]:
    """Price codes that just became issued (issue, confirm, review approval): one entry per
    code and covering version. Call inside the issuing transaction; `fresh` when the
    issuance was created in it (see `append`)."""
    at = at or timezone.now()
    versions = versions_in_force(
        product_id=product.pk, merchant_id=product.merchant_id, basis="issued", at=at
    )
    if not versions:
        return []
    return append((
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
    ), fresh=fresh)


def record_redemption(
    *, redemption, product, code_last4: str, actor: str = "", fresh: bool = False, last: bool = False
) -> list[LedgerEntry]:
    """Price a redemption under every covering version. Call inside the redeeming
    transaction; `fresh` when the redemption was created in it (see `append`).

    `last` (with `fresh`): the entries are written as the transaction's last step
    before COMMIT when the caller's request runs such steps (config/precommit.py), so
    the partner's chain head is locked only from there to COMMIT; the entries are then
    not returned (an empty list). Without such a step, or inside a savepoint, they are
    written now.
    """
    at = redemption.redeemed_at
    versions = versions_in_force(
        product_id=product.pk, merchant_id=product.merchant_id, basis="redeemed", at=at
    )
    if not versions:
        return []
    if last and fresh:
        items = [
            _priced(
                version, product=product, kind=LedgerEntry.Kind.ACCRUAL, source_type="redemption",
                source_id=str(redemption.pk), occurred_at=at, code_last4=code_last4, actor=actor,
            )
            for version in versions
        ]
        if precommit.defer(lambda: _write_fresh(items)):
            return []
        return append(items, fresh=True)
    return append((
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
    ), fresh=fresh)


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
