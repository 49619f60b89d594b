"""Lockouts after failed checks and redemptions, with a growing back-off.

A failure (unknown code, a code that was never issued, a canary) counts against
three scopes: the caller's API key, the end customer (per merchant) and the end
customer's IP (per merchant; IPv6 by /64). When one scope reaches its threshold
(FRAUD_LOCKOUT_THRESHOLDS) inside FRAUD_LOCKOUT_WINDOW_SECONDS it is locked:
- the first lockout lasts FRAUD_LOCKOUT_BASE_SECONDS, each further one within
  FRAUD_LOCKOUT_STRIKE_MEMORY_SECONDS of the previous twice as long, at most
  FRAUD_LOCKOUT_MAX_SECONDS;
- its failure count starts again from zero, so after the lockout it has the same
  number of tries, each time for a longer wait.
A locked scope gets 429 `too_many_attempts` with Retry-After; the attempt itself is
not counted. A lockout writes a FraudEvent (an API key's is high severity: the whole
storefront is stopped, so the merchant is alerted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.db import transaction
from django.utils.translation import gettext_lazy as _

from config import metrics
from config.errors import DomainError
from fraud import clock, conf, counters, signals, subjects
from fraud.context import RiskContext
from fraud.exceptions import LockoutReasonRequired, TooManyAttempts
from fraud.models import FraudEvent
from fraud.services import guessing
from fraud.services.events import record_fraud_event

FAILURE_REASONS = ("unknown_code", "not_issued", "canary")


@dataclass(frozen=True)
class Scope:
    name: str  # "api_key" | "customer" | "ip"
    subject: str

    @property
    def failures_key(self) -> str:
        return counters.subject_key("fail", self.name, self.subject)

    @property
    def lock_key(self) -> str:
        return counters.subject_key("lock", self.name, self.subject)

    @property
    def strikes_key(self) -> str:
        return counters.subject_key("strikes", self.name, self.subject)


def scopes_for(ctx: RiskContext) -> list[Scope]:
    """The scopes an attempt counts against; an absent value has no scope."""
    scopes = []
    if ctx.api_key_id:
        scopes.append(Scope("api_key", ctx.api_key_id))
    if ctx.customer.strip():
        scopes.append(Scope("customer", f"{ctx.merchant_id}:{ctx.customer.strip()}"))
    ip_group = subjects.ip_subject(ctx.ip)
    if ip_group:
        scopes.append(Scope("ip", f"{ctx.merchant_id}:{ip_group}"))
    return scopes


def ensure_not_locked_out(*, ctx: RiskContext) -> None:
    """Refuse the attempt if its API key, customer or IP is locked out. Writes nothing.

    Raises TooManyAttempts (retry_after: seconds until the longest lock ends) or
    RiskCheckUnavailable if the counter store is unreachable.
    """
    scopes = scopes_for(ctx)
    if not scopes:
        return
    locks = counters.get_values([s.lock_key for s in scopes])
    now = clock.now()
    remaining = max((lock["until"] - now for lock in locks.values() if lock), default=0)
    if remaining > 0:
        raise TooManyAttempts(retry_after=math.ceil(remaining))


def record_failed_attempt(*, ctx: RiskContext, reason: str) -> None:
    """Count a failed check or redemption; lock out a scope that reaches its threshold.

    Also feeds the distributed-guessing detector. Call it in the transaction whose
    refusal keeps its work (UnknownCode has rollback=False), or outside any.
    Raises RiskCheckUnavailable if the counter store is unreachable.
    """
    if reason not in FAILURE_REASONS:
        raise ValueError(f"reason must be one of {FAILURE_REASONS}")
    window = int(conf.get("FRAUD_LOCKOUT_WINDOW_SECONDS"))
    thresholds = conf.get("FRAUD_LOCKOUT_THRESHOLDS")
    scopes = scopes_for(ctx)
    bucket = guessing.bucket_for(ctx)
    # Every counter this failure feeds, in one round trip.
    hits, failures_in_bucket, sources = counters.count_failure(
        [counters.WindowIncr(scope.failures_key, window) for scope in scopes], bucket
    )
    for scope, hit in zip(scopes, hits, strict=True):
        if hit.total >= int(thresholds[scope.name]):
            _lock(scope, ctx=ctx, reason=reason, failures=hit.total, window=window)
    guessing.judge_failures(ctx=ctx, reason=reason, bucket=bucket, failures=failures_in_bucket,
                            sources=sources)


def lockout_seconds(strike: int) -> int:
    """How long the `strike`-th lockout in a row lasts: base, 2 x base, 4 x base ... capped."""
    base, cap = int(conf.get("FRAUD_LOCKOUT_BASE_SECONDS")), int(conf.get("FRAUD_LOCKOUT_MAX_SECONDS"))
    return min(cap, base * 2 ** min(strike - 1, 32))


def _lock(scope: Scope, *, ctx: RiskContext, reason: str, failures: int, window: int) -> None:
    now = clock.now()
    memory = int(conf.get("FRAUD_LOCKOUT_STRIKE_MEMORY_SECONDS"))
    previous = counters.get_values([scope.strikes_key]).get(scope.strikes_key)
    strike = previous["n"] + 1 if previous and now - previous["at"] < memory else 1
    seconds = lockout_seconds(strike)
    counters.set_value(scope.strikes_key, {"n": strike, "at": now}, ttl=memory + seconds)
    counters.set_value(scope.lock_key, {"until": now + seconds, "strike": strike}, ttl=seconds + 60)
    counters.window_clear(scope.failures_key, window=window)
    metrics.LOCKOUTS.labels(scope=scope.name).inc()
    record_fraud_event(
        merchant_id=ctx.merchant_id,
        severity=FraudEvent.Severity.HIGH if scope.name == "api_key" else FraudEvent.Severity.LOW,
        kind=FraudEvent.Kind.LOCKOUT, decision=FraudEvent.Decision.LOCKOUT,
        context={**ctx.as_json(), "scope": scope.name, "subject": scope.subject, "reason": reason,
                 "failures": failures, "strike": strike, "lockout_seconds": seconds},
        alert_throttle=f"lockout:{scope.name}:{scope.subject}",
    )


# --- lifting a lockout by hand ---------------------------------------------------------


class LockoutNotActive(DomainError):
    """409 `not_locked`: this lockout is no longer active."""


class NotALockout(DomainError):
    """409 `invalid_state`: this fraud event is not a lockout."""


def scope_of_event(event: FraudEvent) -> Scope:
    """The locked scope a lockout event names (events before `subject` was kept: rebuilt)."""
    if event.kind != FraudEvent.Kind.LOCKOUT:
        raise NotALockout(f"event {event.pk} is a {event.kind} event")
    context = event.context
    name = context.get("scope", "")
    subject = context.get("subject")
    if not subject:
        if name == "api_key":
            subject = str(context.get("api_key_id", ""))
        elif name == "customer":
            subject = f"{event.merchant_id}:{str(context.get('customer', '')).strip()}"
        elif name == "ip":
            subject = f"{event.merchant_id}:{subjects.ip_subject(context.get('ip', ''))}"
    if name not in ("api_key", "customer", "ip") or not subject:
        raise NotALockout(f"event {event.pk} names no locked scope")
    return Scope(name, subject)


def lock_remaining_seconds(scope: Scope) -> int:
    """Seconds the scope stays locked (0 when it is not locked). Raises RiskCheckUnavailable."""
    lock = counters.get_values([scope.lock_key]).get(scope.lock_key)
    return max(0, math.ceil(lock["until"] - clock.now())) if lock else 0


def lift_lockout(*, event: FraudEvent, user, reason: str) -> Scope:
    """End the lockout an event recorded, now, and start its back-off and failures from zero.

    For a customer or storefront locked out by mistake (a shop's test run, a customer
    who mistyped). The counters are overwritten with expired values, so a request racing
    with the lift sees either the lock or nothing. The audit entry (who, why, which
    scope) is written in its own transaction by the receiver of
    `fraud.signals.lockout_lifted` (the audit log's). Raises NotALockout,
    LockoutNotActive, LockoutReasonRequired (blank reason), RiskCheckUnavailable, and
    RuntimeError when nothing would audit the lift.
    """
    scope = scope_of_event(event)
    reason = (reason or "").strip()
    if not reason:
        raise LockoutReasonRequired(_("a reason is required to lift a lockout"))
    if not signals.lockout_lifted.has_listeners(FraudEvent):
        raise RuntimeError("no audit log receives fraud.signals.lockout_lifted: a lift must be audited")
    remaining = lock_remaining_seconds(scope)
    if remaining <= 0:
        raise LockoutNotActive(f"the {scope.name} lockout of event {event.pk} has already ended")
    window = int(conf.get("FRAUD_LOCKOUT_WINDOW_SECONDS"))
    with transaction.atomic():
        signals.lockout_lifted.send(
            sender=FraudEvent, event=event, user=user, reason=reason, scope=scope.name,
            remaining_seconds=remaining,
        )
        counters.set_value(scope.lock_key, {"until": 0, "strike": 0}, ttl=1)
        counters.set_value(scope.strikes_key, {"n": 0, "at": 0}, ttl=1)
        counters.window_clear(scope.failures_key, window=window)
    return scope
