"""The product's invariants, checked against the data as it is stored.

The services keep these invariants by construction (conditional UPDATEs, unique
constraints, events in the same transaction); this module checks the result, behind
the services' back: after a crash, a restore from backup, a manual SQL fix, a bug.
`manage.py check_invariants` runs every check and exits non-zero on a violation;
the beat job `ops.tasks.check_invariants_daily` runs them daily and alerts.

Each check is a function returning a list of `Violation` (empty: holds), reading with
a few aggregate queries (no row-by-row loop in Python), so it scales with the tables
the way a GROUP BY does. Each reports at most SAMPLE ids per violation kind.

Add a check: write `check_<name>() -> list[Violation]` and list it in CHECKS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.apps import apps
from django.db import connection
from django.db.models import Count, F, Max, OuterRef, Q, Subquery, Sum

SAMPLE = 20


@dataclass(frozen=True)
class Violation:
    check: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.detail}"


def _ids(rows) -> str:
    rows = list(rows)
    shown = ", ".join(str(r) for r in rows[:SAMPLE])
    return shown + (f" (and {len(rows) - SAMPLE} more)" if len(rows) > SAMPLE else "")


def check_stock_counts() -> list[Violation]:
    """Per batch: codes counted by state = the sharded counters by state, and they add up to the size.

    Canaries are outside a batch's accounting (not counted, not in its size).
    """
    from vouchers.models import Batch, Code, StockCounter

    counted: dict[int, dict[str, int]] = {}
    for row in (Code.objects.filter(is_canary=False).values("batch_id", "state")
                .annotate(n=Count("id")).order_by()):
        counted.setdefault(row["batch_id"], {})[row["state"]] = row["n"]
    counters: dict[int, dict[str, int]] = {}
    for row in StockCounter.objects.values("batch_id", "state").annotate(n=Sum("count")).order_by():
        if row["n"]:
            counters.setdefault(row["batch_id"], {})[row["state"]] = row["n"]
    violations = []
    for batch_id, size in Batch.objects.values_list("pk", "size").order_by("pk"):
        by_state = {s: n for s, n in counted.get(batch_id, {}).items() if n}
        by_counter = counters.get(batch_id, {})
        if by_state != by_counter:
            violations.append(Violation("stock_counts", (
                f"batch {batch_id}: codes by state {dict(sorted(by_state.items()))} but counters "
                f"{dict(sorted(by_counter.items()))}")))
        total = sum(by_state.values())
        if total != size:
            violations.append(Violation("stock_counts", f"batch {batch_id}: {total} codes but size {size}"))
    return violations


def check_issuances_all_or_nothing() -> list[Violation]:
    """A held, issued or in-review issuance holds exactly its quantity of codes; a closed one none."""
    from vouchers.models import Issuance

    holding = ["reserved", "issued", "review"]
    rows = (Issuance.objects.annotate(n=Count("codes"))
            .filter((Q(status__in=holding) & ~Q(n=F("quantity"))) | (~Q(status__in=holding) & Q(n__gt=0)))
            .values_list("pk", "status", "quantity", "n").order_by("pk"))
    return [Violation("issuance_all_or_nothing",
                      f"issuance {pk} ({status}) asks {quantity} and holds {n} codes")
            for pk, status, quantity, n in rows[:SAMPLE]]


def check_code_in_one_issuance() -> list[Violation]:
    """No code was ever issued to two issuances (its 'issued' events name one issuance at most)."""
    from vouchers.models import CodeEvent

    rows = (CodeEvent.objects.filter(code__isnull=False, to_state="issued", issuance__isnull=False)
            .values("code_id").annotate(n=Count("issuance_id", distinct=True)).filter(n__gt=1)
            .values_list("code_id", flat=True).order_by("code_id"))
    doubly_issued = list(rows)
    if not doubly_issued:
        return []
    return [Violation("code_in_one_issuance",
                      f"codes issued to more than one issuance: {_ids(doubly_issued)}")]


def check_one_live_redemption() -> list[Violation]:
    """At most one live redemption per code, and a code is redeemed exactly when it has one."""
    from vouchers.models import Code, Redemption

    violations = []
    doubles = list(Redemption.objects.filter(reversed_at__isnull=True).values("code_id")
                   .annotate(n=Count("id")).filter(n__gt=1).values_list("code_id", flat=True)
                   .order_by("code_id"))
    if doubles:
        violations.append(Violation("one_live_redemption",
                                    f"codes with two live redemptions: {_ids(doubles)}"))
    live = Redemption.objects.filter(reversed_at__isnull=True).values("code_id")
    unbacked = list(Code.objects.filter(state="redeemed").exclude(pk__in=live)
                    .values_list("pk", flat=True).order_by("pk"))
    if unbacked:
        violations.append(Violation("one_live_redemption",
                                    f"redeemed codes without a live redemption: {_ids(unbacked)}"))
    stray = list(Code.objects.filter(pk__in=live).exclude(state="redeemed").values_list("pk", flat=True)
                 .order_by("pk"))
    if stray:
        violations.append(Violation("one_live_redemption",
                                    f"codes with a live redemption that are not redeemed: {_ids(stray)}"))
    return violations


def check_events_match_states() -> list[Violation]:
    """Every code's last state event names the state it is in; a code with none is still in stock."""
    from vouchers.models import Code, CodeEvent

    code_table = connection.ops.quote_name(Code._meta.db_table)
    event_table = connection.ops.quote_name(CodeEvent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"""
            SELECT c.id, c.state, e.to_state
            FROM {code_table} c
            JOIN (SELECT code_id, MAX(id) AS last_id FROM {event_table}
                  WHERE code_id IS NOT NULL AND to_state <> '' GROUP BY code_id) l ON l.code_id = c.id
            JOIN {event_table} e ON e.id = l.last_id
            WHERE e.to_state <> c.state
            ORDER BY c.id
        """)  # noqa: S608  (table names from the models, no input)
        mismatched = cursor.fetchall()
    violations = [Violation("events_match_states", f"code {pk} is {state} but its last event says {last}")
                  for pk, state, last in mismatched[:SAMPLE]]
    if len(mismatched) > SAMPLE:
        violations.append(Violation("events_match_states", f"... and {len(mismatched) - SAMPLE} more codes"))
    with_events = CodeEvent.objects.filter(code__isnull=False).exclude(to_state="").values("code_id")
    silent = list(Code.objects.exclude(state="available").exclude(pk__in=with_events)
                  .values_list("pk", flat=True).order_by("pk"))
    if silent:
        violations.append(Violation("events_match_states",
                                    f"codes out of stock with no event recording it: {_ids(silent)}"))
    return violations


SETTLEMENT_GRACE = timedelta(minutes=5)


def check_settlement_ledger() -> list[Violation]:
    """Settlement: the statements add up, they chain, every closed entry is on one, the ledger chains.

    - Per statement: total = the sum of its lines' entry amounts, line_count = its lines,
      closing = opening + total, and its lines' entries belong to its agreement.
    - Per agreement, statements in period order: number 1, 2, 3..., each starts where the
      previous one ended, points at it, and opens at its closing (the first at 0).
    - Every entry that happened before the end of its agreement's latest statement is on
      exactly one statement, unless it was recorded after that statement was issued (a
      late entry, for the next close) or within SETTLEMENT_GRACE before it (a transaction
      still in flight while the close read).
    - Each partner's hash chain verifies, and its head names the last entry.

    Where the partners app is not installed there is no ledger and nothing to check.
    """
    try:
        apps.get_model("partners", "Statement")
    except LookupError:
        return []
    from partners.models import LedgerEntry, LedgerHead, Statement, StatementLine
    from partners.services.ledger import GENESIS_HASH, verify_chain

    check = "settlement_ledger"
    violations = []
    rows = (Statement.objects
            .annotate(lines_sum=Sum("lines__entry__amount_minor"), lines_n=Count("lines"))
            .values_list("pk", "agreement_id", "number", "period_start", "period_end", "total_minor",
                         "opening_minor", "closing_minor", "line_count", "lines_sum", "lines_n",
                         "previous_id")
            .order_by("agreement_id", "period_start"))
    before = None
    for (pk, agreement_id, number, start, end, total, opening, closing, line_count, lines_sum,
         lines_n, previous_id) in rows:
        if before is not None and before[1] != agreement_id:
            before = None
        problems = []
        if total != (lines_sum or 0):
            problems.append(f"total {total} but its entries sum to {lines_sum or 0}")
        if line_count != lines_n:
            problems.append(f"line_count {line_count} but {lines_n} lines")
        if closing != opening + total:
            problems.append(f"closing {closing} != opening {opening} + total {total}")
        if before is None:
            if opening != 0 or number != 1 or previous_id is not None:
                problems.append(f"first statement of its agreement but number {number}, opening {opening}, "
                                f"previous {previous_id}")
        else:
            b_pk, _, b_number, b_end, b_closing = before
            if opening != b_closing:
                problems.append(f"opening {opening} != previous closing {b_closing}")
            if previous_id != b_pk or number != b_number + 1:
                problems.append(f"number {number} after {b_number}, previous {previous_id} but {b_pk} "
                                f"precedes it")
            if start != b_end:
                problems.append(f"period starts {start.isoformat()} but the previous ended "
                                f"{b_end.isoformat()}")
        if problems:
            violations.append(Violation(check, f"statement {pk}: " + "; ".join(problems)))
        before = (pk, agreement_id, number, end, closing)

    foreign = list(StatementLine.objects.exclude(entry__agreement_id=F("statement__agreement_id"))
                   .values_list("pk", flat=True).order_by("pk"))
    if foreign:
        violations.append(Violation(check, f"statement lines of another agreement's entry: {_ids(foreign)}"))
    doubled = list(StatementLine.objects.values("entry_id").annotate(n=Count("id")).filter(n__gt=1)
                   .values_list("entry_id", flat=True).order_by("entry_id"))
    if doubled:
        violations.append(Violation(check, f"entries on more than one statement line: {_ids(doubled)}"))
    latest = (Statement.objects.filter(agreement_id=OuterRef("agreement_id"))
              .order_by("-period_start"))
    missing = list(LedgerEntry.objects
                   .annotate(closed_until=Subquery(latest.values("period_end")[:1]),
                             closed_at=Subquery(latest.values("issued_at")[:1]))
                   .filter(line__isnull=True, occurred_at__lt=F("closed_until"),
                           recorded_at__lt=F("closed_at") - SETTLEMENT_GRACE)
                   .values_list("pk", flat=True).order_by("pk"))
    if missing:
        violations.append(Violation(check, f"entries of a closed period on no statement: {_ids(missing)}"))

    heads = dict(LedgerHead.objects.values_list("partner_id", "seq"))
    hashes = dict(LedgerHead.objects.values_list("partner_id", "hash"))
    lasts = {row["partner_id"]: row["last"] for row in
             LedgerEntry.objects.values("partner_id").annotate(last=Max("seq")).order_by()}
    for partner_id in sorted(set(heads) | set(lasts)):
        broken = verify_chain(partner_id=partner_id)
        if broken is not None:
            violations.append(Violation(check, f"partner {partner_id}: hash chain broken at seq {broken}"))
            continue
        last_seq = lasts.get(partner_id, 0)
        last_hash = (LedgerEntry.objects.filter(partner_id=partner_id, seq=last_seq)
                     .values_list("hash", flat=True).first()) or GENESIS_HASH
        if (heads.get(partner_id, 0), hashes.get(partner_id, GENESIS_HASH)) != (last_seq, last_hash):
            violations.append(Violation(check, (
                f"partner {partner_id}: chain head at seq {heads.get(partner_id, 0)} but the last entry "
                f"is seq {last_seq}")))
    return violations


CHECKS: dict[str, Callable[[], list[Violation]]] = {
    "stock_counts": check_stock_counts,
    "issuance_all_or_nothing": check_issuances_all_or_nothing,
    "code_in_one_issuance": check_code_in_one_issuance,
    "one_live_redemption": check_one_live_redemption,
    "events_match_states": check_events_match_states,
    "settlement_ledger": check_settlement_ledger,
}


def run_checks(names: list[str] | None = None) -> list[Violation]:
    violations: list[Violation] = []
    for name, check in CHECKS.items():
        if names and name not in names:
            continue
        violations.extend(check())
    return violations
