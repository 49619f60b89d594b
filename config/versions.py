"""Named version numbers per merchant, for in-process caches that must never go stale.

A process keeps a copy of something it reads on every request (a merchant's API keys,
fraud rules, whether it has list entries, the agreements covering its products) and
trusts the copy only while the version it was loaded under is the current one. The
current versions are read in the request's one Redis round trip (the API's gate
adds `key(...)` to its reads), and every service that changes the data calls
`bump(...)`, after its transaction commits. So a change is seen by every process
on the next request, whatever the cache's age: no TTL guess.

- A version is an integer in the shared cache under `ver:<merchant>:<name>`.
- An absent version (never bumped, or the cache lost it) is created with a random
  start, so a copy loaded before the loss cannot match by accident.
- Outside a request that read the versions (a task, the admin, a test), `current`
  returns None and callers load from the database without caching.

Names in use: `api_keys`, `fraud_rules`, `fraud_lists`, `agreements` (the partner
app's agreement versions covering a product, priced by the ledger).
"""

from __future__ import annotations

import contextvars
import logging
import secrets
import threading
from collections.abc import Callable
from typing import Any

from django.core.cache import caches
from django.db import transaction

logger = logging.getLogger("config.versions")

CACHE_ALIAS = "default"
API_KEYS, FRAUD_RULES, FRAUD_LISTS, AGREEMENTS = "api_keys", "fraud_rules", "fraud_lists", "agreements"

# Versions read by this request (key -> int, or None when absent), set by the API gate.
_READ: contextvars.ContextVar[dict[str, int | None] | None] = contextvars.ContextVar(
    "versions_read", default=None
)


def key(merchant_id: int, name: str) -> str:
    return f"ver:{merchant_id}:{name}"


def start_request() -> contextvars.Token:
    return _READ.set({})


def end_request(token: contextvars.Token) -> None:
    _READ.reset(token)


def remember(values: dict[str, object], keys: list[str]) -> None:
    """Record the versions the gate read for `keys` (absent ones as None)."""
    read = _READ.get()
    if read is None:
        return
    for k in keys:
        value = values.get(k)
        read[k] = value if isinstance(value, int) and not isinstance(value, bool) else None


def current(merchant_id: int, name: str) -> int | None:
    """This request's version of (merchant, name), or None if it was not read or is absent.

    An absent version is created (random start) for the next request; this one loads
    from the database.
    """
    read = _READ.get()
    if read is None:
        return None
    k = key(merchant_id, name)
    if k not in read:
        return None
    if read[k] is None:
        try:
            caches[CACHE_ALIAS].add(k, secrets.randbelow(2**62), timeout=None)
        except Exception:  # the next request tries again; this one does not cache
            logger.warning("could not create version %s", k)
    return read[k]


def bump(merchant_id: int, name: str) -> None:
    """Invalidate every process's copy of (merchant, name), once the transaction commits."""

    def _bump():
        cache = caches[CACHE_ALIAS]
        k = key(merchant_id, name)
        try:
            try:
                cache.incr(k)
            except ValueError:  # absent: any new random start differs from what copies hold
                cache.set(k, secrets.randbelow(2**62), timeout=None)
        except Exception:  # the change is committed; say loudly that copies may be stale
            logger.error("could not bump version %s: cached copies stay until the next bump", k)

    transaction.on_commit(_bump)


class VersionedCache:
    """An in-process map of (merchant, item) -> value, valid while its version is current."""

    def __init__(self, name: str, *, max_entries: int = 10_000) -> None:
        self.name = name
        self.max_entries = max_entries
        self._entries: dict[Any, tuple[int, Any]] = {}
        self._lock = threading.Lock()

    def get_or_load(self, merchant_id: int, item: Any, load: Callable[[], Any]) -> Any:
        """The cached value if loaded under this request's version, else `load()` (kept)."""
        version = current(merchant_id, self.name)
        if version is None:
            return load()
        entry = self._entries.get((merchant_id, item))
        if entry is not None and entry[0] == version:
            return entry[1]
        value = load()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[(merchant_id, item)] = (version, value)
        return value

    def peek(self, merchant_id: int, item: Any) -> tuple[int, Any] | None:
        """(version, value) held for the item, whatever the version (or None)."""
        return self._entries.get((merchant_id, item))

    def put(self, merchant_id: int, item: Any, version: int, value: Any) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[(merchant_id, item)] = (version, value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
