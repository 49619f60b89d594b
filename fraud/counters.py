"""Counters with expiry for velocity rules, lockouts and the guessing alarm.

They live in Django's cache (`FRAUD_CACHE_ALIAS`): django-redis in production and
CI, local memory on the embedded default. Both behave the same:

- Windows are sliding, made of fixed slices of `window / SLICES` seconds whose
  number is part of the key. A count covers the slices that overlap the last
  `window` seconds, so an attempt counts for at least `window` and at most
  `window + window / SLICES` seconds, and a burst across a boundary cannot double
  a limit as a single fixed bucket would.
- Time comes from `fraud.clock.now()` only. Cache TTLs just reclaim memory.
- Increments are atomic (`add(key, 0, ttl)` then `incr`, which is INCRBY in Redis and
  runs under the cache's lock in local memory), and a window's total is the value that
  increment returned plus the earlier slices: N concurrent attempts see N different
  totals, so a limit admits exactly `limit` of them.
- Distinct counts (account farming, guessing spread over many IPs) are Redis sets of
  hashed members (SADD + SUNION in one MULTI); in local memory the same sets are kept
  under a process lock (the local-memory cache is per process anyway).
- Subjects (customer, IP, e-mail...) are hashed into the keys: no personal data and
  no unbounded key length in the cache.

Any error from the cache backend is raised as `RiskCheckUnavailable`: the callers
refuse the request instead of letting it through unchecked (fail closed).
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from django.core.cache import caches

from fraud import clock, conf
from fraud.exceptions import RiskCheckUnavailable

logger = logging.getLogger("fraud.counters")

SLICES = 6
KEY_PREFIX = "fraud:v1"
_LOCAL_LOCK = threading.Lock()


def subject_key(namespace: str, *parts: object) -> str:
    """A cache key for `namespace` and a subject, the subject hashed (no personal data in keys)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:32]
    return f"{KEY_PREFIX}:{namespace}:{digest}"


def _member(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]


def _cache():
    cache = caches[conf.get("FRAUD_CACHE_ALIAS")]
    if getattr(cache, "_ignore_exceptions", False):
        # A backend that swallows errors would turn "Redis is down" into "nothing counted".
        raise RiskCheckUnavailable("The fraud counter cache is configured to ignore errors.")
    return cache


def _redis():
    from django_redis import get_redis_connection

    return get_redis_connection(conf.get("FRAUD_CACHE_ALIAS"))


def _is_redis(cache) -> bool:
    try:
        from django_redis.cache import RedisCache
    except ImportError:  # pragma: no cover - django-redis is a dependency
        return False
    return isinstance(cache, RedisCache)


@contextmanager
def _guard(operation: str) -> Iterator[None]:
    """Turn any cache failure into RiskCheckUnavailable (fail closed)."""
    try:
        yield
    except RiskCheckUnavailable:
        raise
    except Exception as exc:
        logger.error("fraud counter store failed during %s: %s", operation, type(exc).__name__)
        raise RiskCheckUnavailable() from exc


def _checked_int(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RiskCheckUnavailable("The fraud counter store returned no count.")
    return value


# --- sliding windows ----------------------------------------------------------------

def slice_seconds(window: int) -> int:
    return max(1, math.ceil(window / SLICES))


def _slice_keys(name: str, window: int, now: float) -> list[str]:
    """Keys of the slices overlapping [now - window, now], newest last."""
    width = slice_seconds(window)
    current = int(now // width)
    first = int((now - window) // width)
    return [f"{name}:w{window}:{index}" for index in range(first, current + 1)]


@dataclass(frozen=True)
class Hit:
    """One increment: the key it went to (to hand it back) and the window total after it."""

    key: str
    delta: int
    total: int


def _incr(cache, key: str, delta: int, ttl: int) -> int:
    for _ in range(3):
        cache.add(key, 0, ttl)
        try:
            return _checked_int(cache.incr(key, delta))
        except ValueError:  # the key expired between add and incr; add it again
            continue
    raise RiskCheckUnavailable("The fraud counter store keeps losing keys.")


def window_incr(name: str, *, window: int, delta: int = 1) -> Hit:
    """Add `delta` to the current slice of `name` and return the window's total."""
    now = clock.now()
    keys = _slice_keys(name, window, now)
    ttl = window + 2 * slice_seconds(window)
    with _guard("window_incr"):
        cache = _cache()
        # The current slice's value comes from the atomic increment itself, so concurrent
        # attempts each see a different total: exactly `limit` of them fit under a limit.
        if _is_redis(cache):
            # One round trip instead of three (add, incr, get_many): this runs for every
            # velocity rule of every request.
            redis_keys = [cache.make_key(k) for k in keys]
            pipe = _redis().pipeline(transaction=True)
            pipe.incrby(redis_keys[-1], delta)
            pipe.expire(redis_keys[-1], ttl, nx=True)
            pipe.mget(redis_keys[:-1])
            current_raw, _expiry_set, earlier_raw = pipe.execute()
            # django-redis stores integers unpickled, so raw MGET gives b"<digits>".
            total = _checked_int(current_raw) + sum(int(v) for v in earlier_raw if v is not None)
        else:
            current = _incr(cache, keys[-1], delta, ttl)
            earlier = cache.get_many(keys[:-1])
            total = current + sum(_checked_int(v) for v in earlier.values())
    return Hit(key=keys[-1], delta=delta, total=total)


def window_undo(hit: Hit) -> None:
    """Take back an increment (an attempt that was denied after all)."""
    # A slice that expired meanwhile (ValueError) has nothing left to take back.
    with _guard("window_undo"), suppress(ValueError):
        _cache().decr(hit.key, hit.delta)


def window_total(name: str, *, window: int) -> int:
    with _guard("window_total"):
        values = _cache().get_many(_slice_keys(name, window, clock.now()))
        return sum(_checked_int(v) for v in values.values())


def window_clear(name: str, *, window: int) -> None:
    with _guard("window_clear"):
        _cache().delete_many(_slice_keys(name, window, clock.now()))


def distinct_add(name: str, member: str, *, window: int) -> int:
    """Record `member` under `name` and return how many distinct members the window holds."""
    now = clock.now()
    keys = _slice_keys(name, window, now)
    ttl = window + 2 * slice_seconds(window)
    hashed = _member(member)
    with _guard("distinct_add"):
        cache = _cache()
        if _is_redis(cache):
            redis_keys = [cache.make_key(k) for k in keys]
            pipe = _redis().pipeline(transaction=True)
            pipe.sadd(redis_keys[-1], hashed)
            pipe.expire(redis_keys[-1], ttl)
            pipe.sunion(redis_keys)
            return len(pipe.execute()[-1])
        with _LOCAL_LOCK:
            current = cache.get(keys[-1]) or set()
            current.add(hashed)
            cache.set(keys[-1], current, ttl)
            union: set[str] = set()
            for members in cache.get_many(keys).values():
                union |= members
            return len(union)


# --- one round trip for a whole assessment ----------------------------------------

@dataclass(frozen=True)
class WindowIncr:
    name: str
    window: int
    delta: int = 1


@dataclass(frozen=True)
class DistinctAdd:
    name: str
    member: str
    window: int


@dataclass(frozen=True)
class DistinctHit:
    """One distinct-member add: the slice it went to, whether the member was new there."""

    key: str
    hashed: str
    added: bool
    total: int
    ttl: int


def apply_many(
    incrs: list[WindowIncr], adds: list[DistinctAdd]
) -> tuple[list[Hit], list[DistinctHit]]:
    """Every window increment and distinct add of one assessment; one round trip on Redis.

    Same results as calling window_incr / distinct_add one by one (each total comes
    from the atomic command itself), in one MULTI/EXEC instead of one per rule.
    """
    if not incrs and not adds:
        return [], []
    now = clock.now()
    with _guard("apply_many"):
        cache = _cache()
        if not _is_redis(cache):
            return ([window_incr(i.name, window=i.window, delta=i.delta) for i in incrs],
                    [_local_distinct_add(cache, a, now) for a in adds])
        pipe = _redis().pipeline(transaction=True)
        plans = []
        for i in incrs:
            keys = _slice_keys(i.name, i.window, now)
            redis_keys = [cache.make_key(k) for k in keys]
            pipe.incrby(redis_keys[-1], i.delta)
            pipe.expire(redis_keys[-1], i.window + 2 * slice_seconds(i.window), nx=True)
            pipe.mget(redis_keys[:-1])
            plans.append(keys[-1])
        for a in adds:
            keys = _slice_keys(a.name, a.window, now)
            redis_keys = [cache.make_key(k) for k in keys]
            pipe.sadd(redis_keys[-1], _member(a.member))
            pipe.expire(redis_keys[-1], a.window + 2 * slice_seconds(a.window))
            pipe.sunion(redis_keys)
            plans.append(keys[-1])
        results = pipe.execute()
        hits: list[Hit] = []
        for n, i in enumerate(incrs):
            current, _expiry, earlier = results[3 * n: 3 * n + 3]
            total = _checked_int(current) + sum(int(v) for v in earlier if v is not None)
            hits.append(Hit(key=plans[n], delta=i.delta, total=total))
        distinct: list[DistinctHit] = []
        for m, a in enumerate(adds):
            added, _expiry, union = results[3 * (len(incrs) + m): 3 * (len(incrs) + m) + 3]
            distinct.append(DistinctHit(
                key=plans[len(incrs) + m], hashed=_member(a.member), added=bool(added),
                total=len(union), ttl=a.window + 2 * slice_seconds(a.window),
            ))
        return hits, distinct


def _local_distinct_add(cache, add: DistinctAdd, now: float) -> DistinctHit:
    keys = _slice_keys(add.name, add.window, now)
    hashed = _member(add.member)
    with _LOCAL_LOCK:
        current = cache.get(keys[-1]) or set()
        added = hashed not in current
        current.add(hashed)
        cache.set(keys[-1], current, add.window + 2 * slice_seconds(add.window))
        union: set[str] = set()
        for members in cache.get_many(keys).values():
            union |= members
    return DistinctHit(key=keys[-1], hashed=hashed, added=added, total=len(union),
                       ttl=add.window + 2 * slice_seconds(add.window))


def distinct_undo(hit: DistinctHit) -> None:
    """Take back a distinct add, if it was the one that put the member there."""
    if not hit.added:
        return
    with _guard("distinct_undo"):
        cache = _cache()
        if _is_redis(cache):
            _redis().srem(cache.make_key(hit.key), hit.hashed)
            return
        with _LOCAL_LOCK:
            current = cache.get(hit.key)
            if current:
                current.discard(hit.hashed)
                cache.set(hit.key, current, hit.ttl)


# --- fixed buckets (the guessing alarm compares whole windows) ----------------------

def bucket_incr(name: str, *, bucket: int, ttl: int) -> int:
    with _guard("bucket_incr"):
        return _incr(_cache(), f"{name}:b{bucket}", 1, ttl)


def bucket_counts(name: str, *, buckets: list[int]) -> list[int]:
    keys = [f"{name}:b{b}" for b in buckets]
    with _guard("bucket_counts"):
        values = _cache().get_many(keys)
        return [_checked_int(values.get(k, 0)) for k in keys]


def distinct_bucket_add(name: str, member: str, *, bucket: int, ttl: int) -> int:
    """Distinct members of one fixed bucket after adding `member`."""
    key = f"{name}:b{bucket}"
    hashed = _member(member)
    with _guard("distinct_bucket_add"):
        cache = _cache()
        if _is_redis(cache):
            from django_redis import get_redis_connection

            redis_key = cache.make_key(key)
            pipe = get_redis_connection(conf.get("FRAUD_CACHE_ALIAS")).pipeline(transaction=True)
            pipe.sadd(redis_key, hashed)
            pipe.expire(redis_key, ttl)
            pipe.scard(redis_key)
            return int(pipe.execute()[-1])
        with _LOCAL_LOCK:
            members = cache.get(key) or set()
            members.add(hashed)
            cache.set(key, members, ttl)
            return len(members)


# --- plain values (lockout state) -------------------------------------------------

def get_values(keys: list[str]) -> dict[str, Any]:
    ahead = READ_AHEAD.get()
    if ahead and all(k in ahead for k in keys):  # read by this request's gate already
        return {k: ahead[k] for k in keys if ahead[k] is not READ_AHEAD_ABSENT}
    with _guard("get_values"):
        return _cache().get_many(keys)


def set_value(key: str, value: object, *, ttl: int) -> None:
    with _guard("set_value"):
        _cache().set(key, value, ttl)
    ahead = READ_AHEAD.get()
    if ahead is not None and key in ahead:
        ahead[key] = value


def add_value(key: str, value: object, *, ttl: int) -> bool:
    """Set `key` only if absent; True for the one caller that set it."""
    with _guard("add_value"):
        return bool(_cache().add(key, value, ttl))


# --- the request gate: rate limits and reads of the request, one round trip ---------

@dataclass(frozen=True)
class FixedLimit:
    """A fixed-window request counter (rate limits): key, window seconds."""

    name: str
    window: int


@dataclass(frozen=True)
class GateResult:
    counts: list[int]  # each FixedLimit's count after this request, in order
    retry_after: list[int]  # seconds until each limit's window ends
    values: dict[str, object]  # the plain values read (absent keys left out)


def gate(*, limits: list[FixedLimit], reads: list[str], alias: str | None = None) -> GateResult:
    """Count this request against `limits` and read `reads`: one MULTI/EXEC on Redis.

    Windows are fixed and aligned to the epoch (`name:<window>:<index>`); the count
    comes from INCR itself, so N concurrent requests see N different counts.
    Raises RiskCheckUnavailable if the store fails (the caller decides how to refuse).
    """
    now = clock.now()
    keys = [f"{limit.name}:{limit.window}:{int(now // limit.window)}" for limit in limits]
    retry_after = [max(1, math.ceil(limit.window - now % limit.window)) for limit in limits]
    with _guard("gate"):
        cache = caches[alias or conf.get("FRAUD_CACHE_ALIAS")]
        if getattr(cache, "_ignore_exceptions", False):
            raise RiskCheckUnavailable("The counter cache is configured to ignore errors.")
        if not _is_redis(cache):
            counts = [_incr(cache, key, 1, limit.window + 1) for key, limit in zip(keys, limits, strict=True)]
            return GateResult(counts, retry_after, cache.get_many(reads) if reads else {})
        from django_redis import get_redis_connection

        pipe = get_redis_connection(alias or conf.get("FRAUD_CACHE_ALIAS")).pipeline(transaction=True)
        for key, limit in zip(keys, limits, strict=True):
            redis_key = cache.make_key(key)
            pipe.incr(redis_key)
            pipe.expire(redis_key, limit.window + 1, nx=True)
        if reads:
            pipe.mget([cache.make_key(k) for k in reads])
        results = pipe.execute()
        counts = [_checked_int(results[2 * n]) for n in range(len(limits))]
        values = {}
        if reads:
            for key, raw in zip(reads, results[-1], strict=True):
                if raw is not None:
                    values[key] = cache.client.decode(raw)  # type: ignore[attr-defined]  # django-redis
        return GateResult(counts, retry_after, values)


# Values the request gate already read in this request (lockout state), so that
# get_values answers them without another round trip. Set per request by the API.
READ_AHEAD: contextvars.ContextVar[dict[str, object] | None] = contextvars.ContextVar(
    "fraud_counters_read_ahead", default=None
)
READ_AHEAD_ABSENT = object()


def remember_read_ahead(keys: list[str], values: dict[str, object]) -> None:
    """Record what the gate read for `keys` (absent ones too) for this request."""
    store = READ_AHEAD.get()
    if store is not None:
        for key in keys:
            store[key] = values.get(key, READ_AHEAD_ABSENT)


# --- a failed attempt: every counter it feeds, one round trip -----------------------

@dataclass(frozen=True)
class BucketCount:
    """One fixed bucket to increment and one to add a distinct member to (guessing alarm)."""

    name: str
    distinct_name: str
    member: str
    bucket: int
    ttl: int


def count_failure(incrs: list[WindowIncr], bucket: BucketCount) -> tuple[list[Hit], int, int]:
    """The failure windows of every scope and the merchant's guessing buckets, one MULTI on Redis.

    Returns (a Hit per window increment, the bucket's failures, its distinct members),
    the same values as window_incr, bucket_incr and distinct_bucket_add one by one.
    Raises RiskCheckUnavailable.
    """
    now = clock.now()
    with _guard("count_failure"):
        cache = _cache()
        if not _is_redis(cache):
            hits = [window_incr(i.name, window=i.window, delta=i.delta) for i in incrs]
            failures = bucket_incr(bucket.name, bucket=bucket.bucket, ttl=bucket.ttl)
            sources = distinct_bucket_add(bucket.distinct_name, bucket.member, bucket=bucket.bucket,
                                          ttl=bucket.ttl)
            return hits, failures, sources
        pipe = _redis().pipeline(transaction=True)
        slices = []
        for i in incrs:
            keys = _slice_keys(i.name, i.window, now)
            redis_keys = [cache.make_key(k) for k in keys]
            pipe.incrby(redis_keys[-1], i.delta)
            pipe.expire(redis_keys[-1], i.window + 2 * slice_seconds(i.window), nx=True)
            pipe.mget(redis_keys[:-1])
            slices.append(keys[-1])
        bucket_key = cache.make_key(f"{bucket.name}:b{bucket.bucket}")
        pipe.incr(bucket_key)
        pipe.expire(bucket_key, bucket.ttl, nx=True)
        distinct_key = cache.make_key(f"{bucket.distinct_name}:b{bucket.bucket}")
        pipe.sadd(distinct_key, _member(bucket.member))
        pipe.expire(distinct_key, bucket.ttl)
        pipe.scard(distinct_key)
        results = pipe.execute()
        hits = []
        for n, i in enumerate(incrs):
            current, _expiry, earlier = results[3 * n: 3 * n + 3]
            total = _checked_int(current) + sum(int(v) for v in earlier if v is not None)
            hits.append(Hit(key=slices[n], delta=i.delta, total=total))
        rest = results[3 * len(incrs):]
        return hits, _checked_int(rest[0]), int(rest[4])
