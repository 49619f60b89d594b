"""Judging one issuance, redemption or check against the merchant's rules.

Order (as Stripe Radar): allow-list rules first, then deny rules, then review rules,
each group by the rule's `order`. An allow or deny match decides at once; every
review match is collected so a reviewer sees all of them. No match: allow.

Velocity counts attempts that were allowed to proceed (outcome allow or review): a
velocity rule increments its counter, and if the final outcome is deny every
increment made for this attempt is taken back. So "10 per hour" means ten orders
went through, and a customer hammering a refusal does not extend it. An attempt
that proceeds but then fails in the caller (out of stock) still counts. Farming
rules record every customer they see on a device or IP, allowed or not: a farm is
what is seen, not what is sold.

Counting costs one Redis round trip per attempt: at the first counting rule reached,
the counters of it and every later rule are taken in one pipeline, and the counts of
rules the evaluation then never reaches (after a decisive match) are taken back, so
the outcome is the same as counting rule by rule.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import transaction
from django.db.models import Q, Value

from fraud import clock, counters, subjects
from fraud.context import RiskContext
from fraud.exceptions import RiskCheckUnavailable
from fraud.models import (
    AllowlistEntry,
    BlocklistEntry,
    FraudEvent,
    FraudRule,
    ListKind,
    Outcome,
    RiskAssessment,
)
from fraud.services.events import record_fraud_event
from fraud.services.rules import lists_copy, rules_for_merchant

logger = logging.getLogger("fraud.assessment")

Kind = FraudRule.Kind
VELOCITY_KINDS = FraudRule.VELOCITY_KINDS
FARMING_KINDS = frozenset({Kind.FARMING_DEVICE, Kind.FARMING_IP})

# Which list entry names the reason when several match: the most specific first.
LIST_PRIORITY = [ListKind.CUSTOMER, ListKind.EMAIL, ListKind.EMAIL_DOMAIN, ListKind.DEVICE,
                 ListKind.IP, ListKind.CIDR]


@dataclass
class _Evaluation:
    outcome: str = Outcome.ALLOW
    reasons: list[str] = field(default_factory=list)
    details: list[dict] = field(default_factory=list)
    hits: list[counters.Hit] = field(default_factory=list)
    # Counters of every applicable rule, taken in one round trip before evaluating.
    prefetched: dict[int, counters.Hit | counters.DistinctHit] = field(default_factory=dict)
    list_matches: dict | None = None  # allow/block list matches, fetched once
    proximity: float = 0.0  # highest count / limit seen, for the score of an allow
    allow_listed: bool = False

    @property
    def score(self) -> int:
        if self.outcome == Outcome.DENY:
            return 100
        if self.outcome == Outcome.REVIEW:
            return min(89, 60 + 10 * len(self.reasons))
        if self.allow_listed:
            return 0
        return round(49 * min(self.proximity, 1.0))


def assess(*, ctx: RiskContext, defer_allow: bool = False) -> RiskAssessment:
    """Decide allow, review or deny for `ctx` and store the decision with its reasons.

    Call it before claiming codes or redeeming; on deny raise
    `FraudDenied.for_assessment(assessment)` (its rollback=False keeps the stored
    decision). Once the issuance or redemption exists, `attach_assessment` links them.
    A deny or review also writes a FraudEvent.

    `defer_allow`: an allow (which writes no fraud event) is returned unsaved (pk None)
    and is written by `attach_assessment`, or by a fast path's statement together with
    the effect it judged, so an allowed request pays no INSERT + UPDATE of its own. A
    request that then changes nothing (out of stock, already redeemed) leaves no row,
    as an allow that was written and rolled back or dropped would not.
    Raises RiskCheckUnavailable if the counter store is unreachable (nothing stored),
    ValueError if the context has no merchant.
    """
    if ctx.merchant_id is None:
        raise ValueError("a risk assessment needs the merchant whose rules apply")
    rules = [
        r for r in rules_for_merchant(ctx.merchant_id)
        if r.applies_to(ctx.action) and (r.product_id is None or r.product_id == ctx.product_id)
    ]
    try:
        evaluation = _evaluate(ctx, rules)
    except RiskCheckUnavailable:
        logger.error("risk assessment refused: counter store unavailable (merchant %s)", ctx.merchant_id)
        raise
    assessment = RiskAssessment(
        merchant_id=ctx.merchant_id, action=ctx.action, outcome=str(evaluation.outcome),
        score=evaluation.score, reasons=evaluation.reasons, details=evaluation.details,
        api_key_id=ctx.api_key_id[:150], storefront_id=ctx.storefront_id, partner_id=ctx.partner_id,
        product_id=ctx.product_id, quantity=ctx.quantity, customer=ctx.customer[:128],
        ip=ctx.ip[:64], ip_group=subjects.ip_subject(ctx.ip)[:64], device_id=ctx.device_id[:128],
        email=ctx.email[:254],
    )
    if defer_allow and evaluation.outcome == Outcome.ALLOW:
        return assessment
    with transaction.atomic(savepoint=False):
        assessment.save(force_insert=True)
        if evaluation.outcome != Outcome.ALLOW:
            record_fraud_event(
                merchant_id=ctx.merchant_id,
                severity=FraudEvent.Severity.LOW if evaluation.outcome == Outcome.DENY
                else FraudEvent.Severity.INFO,
                kind=FraudEvent.Kind.RISK_DECISION, decision=str(evaluation.outcome),
                context={**ctx.as_json(), "reasons": evaluation.reasons, "score": evaluation.score},
                assessment_id=assessment.pk,
            )
    return assessment


def attach_assessment(*, assessment: RiskAssessment, issuance_id=None, redemption_id=None) -> None:
    """Link a stored assessment to the issuance or redemption it judged (exactly one, once).

    Call inside the transaction that creates the issuance or redemption.
    Raises ValueError if not exactly one id is given, the action does not fit, or the
    assessment is already linked.
    """
    if (issuance_id is None) == (redemption_id is None):
        raise ValueError("give exactly one of issuance_id and redemption_id")
    expected = "issue" if issuance_id is not None else "redeem"
    if assessment.action != expected:
        raise ValueError(f"a {assessment.action!r} assessment cannot judge this ({expected!r} expected)")
    if assessment.pk is None:  # deferred (assess(defer_allow=True)): written now, linked
        assessment.issuance_id, assessment.redemption_id = issuance_id, redemption_id
        assessment.save(force_insert=True)
        return
    updated = RiskAssessment.objects.filter(
        pk=assessment.pk, issuance__isnull=True, redemption__isnull=True
    ).update(issuance_id=issuance_id, redemption_id=redemption_id)
    if updated != 1:
        raise ValueError(f"assessment {assessment.pk} is already attached")
    assessment.issuance_id = issuance_id
    assessment.redemption_id = redemption_id


# --- evaluation ---------------------------------------------------------------------

def _evaluate(ctx: RiskContext, rules: list[FraudRule]) -> _Evaluation:
    result = _Evaluation()
    reached: set[int] = set()
    prefetched = False
    for position, rule in enumerate(rules):
        reached.add(rule.pk)
        if not prefetched and rule.kind in VELOCITY_KINDS | FARMING_KINDS:
            # First rule that counts: count for it and every later rule at once. List and
            # cap rules before it decide without the counter store (it may be down).
            _prefetch_counters(ctx, rules[position:], result)
            prefetched = True
        reason = MATCHERS[rule.kind](rule, ctx, result)
        if reason is None:
            continue
        if rule.action == Outcome.ALLOW:
            result.outcome, result.reasons, result.allow_listed = Outcome.ALLOW, [reason], True
            break
        if rule.action == Outcome.DENY:
            result.outcome, result.reasons = Outcome.DENY, [reason]
            break
        result.outcome = Outcome.REVIEW
        if reason not in result.reasons:
            result.reasons.append(reason)
    # Rules after a decisive match never counted this attempt: take their counts back.
    for pk, hit in result.prefetched.items():
        if pk not in reached:
            _undo(hit)
    if result.outcome == Outcome.DENY:
        for hit in result.hits:  # a denied attempt does not count towards velocity
            counters.window_undo(hit)
    return result


def _prefetch_counters(ctx: RiskContext, rules: list[FraudRule], result: _Evaluation) -> None:
    """Count this attempt for every velocity and farming rule in `rules` (one Redis round trip)."""
    incr_rules, incrs, add_rules, adds = [], [], [], []
    for rule in rules:
        if rule.kind in VELOCITY_KINDS:
            subject = _velocity_subject(rule, ctx)
            if subject:
                product = ctx.product_id if rule.per_product else ""
                incr_rules.append(rule)
                incrs.append(counters.WindowIncr(
                    counters.subject_key("vel", rule.pk, subject, product), _setting(rule, "window_seconds"),
                    ctx.quantity if rule.count_units else 1,
                ))
        elif rule.kind in FARMING_KINDS:
            where, customer = _farming_subject(rule, ctx)
            if where and customer:
                add_rules.append(rule)
                adds.append(counters.DistinctAdd(
                    counters.subject_key("farm", rule.pk, where), customer, _setting(rule, "window_seconds")
                ))
    hits, distinct = counters.apply_many(incrs, adds)
    result.prefetched.update(zip((r.pk for r in incr_rules), hits, strict=True))
    result.prefetched.update(zip((r.pk for r in add_rules), distinct, strict=True))


def _undo(hit: counters.Hit | counters.DistinctHit) -> None:
    if isinstance(hit, counters.Hit):
        counters.window_undo(hit)
    else:
        counters.distinct_undo(hit)


def _counted(result: _Evaluation, rule: FraudRule, count: int, matched: bool) -> None:
    result.details.append(
        {"rule": rule.pk, "kind": rule.kind, "count": count, "limit": rule.limit, "matched": matched}
    )
    if rule.limit:
        result.proximity = max(result.proximity, count / rule.limit)


def _velocity_subject(rule: FraudRule, ctx: RiskContext) -> str:
    if rule.kind == Kind.VELOCITY_CUSTOMER:
        return ctx.customer.strip()
    if rule.kind == Kind.VELOCITY_IP:
        return subjects.ip_subject(ctx.ip)
    if rule.kind == Kind.VELOCITY_DEVICE:
        return ctx.device_id.strip()
    return subjects.email_address(ctx.email) if ctx.email.strip() else ""


def _match_velocity(rule: FraudRule, ctx: RiskContext, result: _Evaluation) -> str | None:
    hit = result.prefetched.get(rule.pk)
    if not isinstance(hit, counters.Hit):  # no subject to count (e.g. no customer given)
        return None
    result.hits.append(hit)
    matched = hit.total > _setting(rule, "limit")
    _counted(result, rule, hit.total, matched)
    return rule.kind if matched else None


def _setting(rule: FraudRule, name: str) -> int:
    """A numeric setting the rule's kind requires (FraudRule.clean refuses a rule without it)."""
    value = getattr(rule, name)
    if value is None:
        raise ValueError(f"fraud rule {rule.pk} ({rule.kind}) has no {name}")
    return int(value)


def _match_quantity_cap(rule: FraudRule, ctx: RiskContext, result: _Evaluation) -> str | None:
    matched = ctx.quantity > _setting(rule, "limit")
    _counted(result, rule, ctx.quantity, matched)
    return rule.kind if matched else None


def _match_first_orders(rule: FraudRule, ctx: RiskContext, result: _Evaluation) -> str | None:
    limit = _setting(rule, "limit")
    if ctx.quantity <= limit:
        return None
    first_orders = _setting(rule, "new_customer_orders")
    previous = 0
    # An anonymous buyer has no history (nor has a caller without a merchant, nor one that
    # hands over no way of counting orders): treated as new.
    if ctx.customer.strip() and ctx.merchant_id is not None and ctx.previous_orders is not None:
        previous = ctx.previous_orders(
            merchant_id=ctx.merchant_id, customer=ctx.customer.strip(), at_most=first_orders,
        )
    matched = previous < first_orders
    result.details.append({"rule": rule.pk, "kind": rule.kind, "previous_orders": previous,
                           "quantity": ctx.quantity, "limit": rule.limit, "matched": matched})
    return rule.kind if matched else None


def _farming_subject(rule: FraudRule, ctx: RiskContext) -> tuple[str, str]:
    where = ctx.device_id.strip() if rule.kind == Kind.FARMING_DEVICE else subjects.ip_subject(ctx.ip)
    return where, ctx.customer.strip()


def _match_farming(rule: FraudRule, ctx: RiskContext, result: _Evaluation) -> str | None:
    hit = result.prefetched.get(rule.pk)
    if hit is None:  # no device/IP or no customer to count
        return None
    distinct = hit.total
    matched = distinct > _setting(rule, "limit")
    _counted(result, rule, distinct, matched)
    return rule.kind if matched else None


def _list_matcher(model: type[AllowlistEntry] | type[BlocklistEntry], prefix: str) -> Callable:
    def match(rule: FraudRule, ctx: RiskContext, result: _Evaluation) -> str | None:
        kind = _list_matches(ctx, result).get(model)
        if kind is None:
            return None
        result.details.append({"rule": rule.pk, "kind": rule.kind, "entry_kind": kind, "matched": True})
        return f"{prefix}_{kind}"

    return match


def _list_matches(ctx: RiskContext, result: _Evaluation) -> dict:
    """{AllowlistEntry or BlocklistEntry: most specific matching kind}, both lists in one query.

    Computed once per assessment, the first time a list rule asks.
    """
    if result.list_matches is not None:
        return result.list_matches
    # The (kind, value) pairs this attempt could match exactly; any CIDR entry is tested
    # against its address.
    wanted: set[tuple[str, str]] = set()
    customer, device = ctx.customer.strip(), ctx.device_id.strip()
    if customer:
        wanted.add((ListKind.CUSTOMER, customer))
    if device:
        wanted.add((ListKind.DEVICE, device))
    if ctx.email.strip():
        wanted.add((ListKind.EMAIL, subjects.email_address(ctx.email)))
        wanted.update(
            (ListKind.EMAIL_DOMAIN, suffix)
            for suffix in subjects.domain_suffixes(subjects.email_domain(ctx.email))
        )
    address = subjects.parse_ip(ctx.ip)
    if address is not None:
        wanted.add((ListKind.IP, str(address)))
    result.list_matches = {}
    if not wanted or ctx.merchant_id is None:
        return result.list_matches
    copy = lists_copy(ctx.merchant_id)
    if copy.count == 0:  # most merchants have no lists: no query
        return result.list_matches
    now = datetime.fromtimestamp(clock.now(), tz=UTC)
    entries: Iterable[tuple[str, str, str]]
    if copy.entries is not None:  # few entries, held in process: matched here, no query
        entries = [
            (which, kind, value) for which, kind, value, expires_at in copy.entries
            if (expires_at is None or expires_at > now)
            and ((kind, value) in wanted or (kind == ListKind.CIDR and address is not None))
        ]
    else:
        q = Q()
        for kind, value in wanted:
            q |= Q(kind=kind, value=value)
        if address is not None:
            q |= Q(kind=ListKind.CIDR)
        live = Q(merchant_id=ctx.merchant_id) & q & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        allowed = AllowlistEntry.objects.filter(live).order_by().annotate(list=Value("allow"))
        blocked = BlocklistEntry.objects.filter(live).order_by().annotate(list=Value("block"))
        entries = allowed.values_list("list", "kind", "value").union(
            blocked.values_list("list", "kind", "value"), all=True
        )
    matched: dict[str, set[str]] = {"allow": set(), "block": set()}
    for which, kind, value in entries:
        if kind != ListKind.CIDR or _in_network(address, value):
            matched[which].add(kind)
    for model, which in ((AllowlistEntry, "allow"), (BlocklistEntry, "block")):
        listed = next((k.value for k in LIST_PRIORITY if k in matched[which]), None)
        if listed is not None:
            result.list_matches[model] = listed
    return result.list_matches


def _in_network(address, network: str) -> bool:
    try:
        return address in ipaddress.ip_network(network, strict=False)
    except (ValueError, TypeError):
        return False


MATCHERS: dict[str, Callable[[FraudRule, RiskContext, _Evaluation], str | None]] = {
    Kind.ALLOWLIST: _list_matcher(AllowlistEntry, "allowlist"),
    Kind.BLOCKLIST: _list_matcher(BlocklistEntry, "blocklist"),
    Kind.VELOCITY_CUSTOMER: _match_velocity,
    Kind.VELOCITY_IP: _match_velocity,
    Kind.VELOCITY_DEVICE: _match_velocity,
    Kind.VELOCITY_EMAIL: _match_velocity,
    Kind.QUANTITY_CAP: _match_quantity_cap,
    Kind.FIRST_ORDERS: _match_first_orders,
    Kind.FARMING_DEVICE: _match_farming,
    Kind.FARMING_IP: _match_farming,
}
