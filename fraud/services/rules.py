"""A merchant's rules: created from defaults on first use, then edited in the admin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from config import versions
from fraud.models import AllowlistEntry, BlocklistEntry, FraudProfile, FraudRule, Outcome

HOUR = 3600
DAY = 24 * HOUR

Kind = FraudRule.Kind

# The defaults a merchant starts with. Limits are generous for a real customer and
# tight for a script; every rule can be tuned or disabled per merchant.
DEFAULT_RULES: list[dict] = [
    {"name": "Allow-listed customers, e-mails, devices and IPs", "kind": Kind.ALLOWLIST,
     "action": Outcome.ALLOW, "order": 10, "on_issue": True, "on_redeem": True, "on_check": True},
    {"name": "Blocklisted customers, e-mails, devices and IPs", "kind": Kind.BLOCKLIST,
     "action": Outcome.DENY, "order": 10, "on_issue": True, "on_redeem": True, "on_check": True},
    {"name": "At most 20 codes per order", "kind": Kind.QUANTITY_CAP,
     "action": Outcome.DENY, "order": 20, "limit": 20},
    {"name": "At most 10 orders per customer per hour", "kind": Kind.VELOCITY_CUSTOMER,
     "action": Outcome.DENY, "order": 30, "limit": 10, "window_seconds": HOUR},
    {"name": "At most 10 orders per e-mail per hour", "kind": Kind.VELOCITY_EMAIL,
     "action": Outcome.DENY, "order": 40, "limit": 10, "window_seconds": HOUR},
    {"name": "Review over 20 orders per IP per hour", "kind": Kind.VELOCITY_IP,
     "action": Outcome.REVIEW, "order": 50, "limit": 20, "window_seconds": HOUR},
    {"name": "Review over 10 orders per device per hour", "kind": Kind.VELOCITY_DEVICE,
     "action": Outcome.REVIEW, "order": 60, "limit": 10, "window_seconds": HOUR},
    {"name": "Review a new customer's first 3 orders above 5 codes", "kind": Kind.FIRST_ORDERS,
     "action": Outcome.REVIEW, "order": 70, "limit": 5, "new_customer_orders": 3},
    {"name": "Review over 3 customers on one device per day", "kind": Kind.FARMING_DEVICE,
     "action": Outcome.REVIEW, "order": 80, "limit": 3, "window_seconds": DAY},
    {"name": "Review over 10 customers on one IP per hour", "kind": Kind.FARMING_IP,
     "action": Outcome.REVIEW, "order": 90, "limit": 10, "window_seconds": HOUR},
]


# Merchants whose profile row was found committed: no need to look again in this process.
_SEEDED: set[int] = set()


def ensure_default_rules(*, merchant_id: int) -> bool:
    """Create the default rules the first time a merchant is assessed; True if created now.

    Runs once per merchant (the profile row is the marker), so a rule the merchant
    deleted does not come back. A profile found already there is remembered per
    process, which saves a query (and an empty transaction) on every assessment.
    """
    if merchant_id in _SEEDED:
        return False
    return _seed_default_rules(merchant_id=merchant_id)


@transaction.atomic(savepoint=False)
def _seed_default_rules(*, merchant_id: int) -> bool:
    _profile, created = FraudProfile.objects.get_or_create(merchant_id=merchant_id)
    if created:
        FraudRule.objects.bulk_create(
            [FraudRule(merchant_id=merchant_id, **spec) for spec in DEFAULT_RULES]
        )
    else:
        _SEEDED.add(merchant_id)
    return created


# A merchant's rules per process, valid while its `fraud_rules` version is the one read
# in this request (config/versions.py). Only rules of a committed profile are kept:
# rules created by a transaction that may still roll back are never cached.
_RULES = versions.VersionedCache(versions.FRAUD_RULES)


def rules_for_merchant(merchant_id: int) -> list[FraudRule]:
    """The merchant's enabled rules in evaluation order: allow, deny, review; then `order`.

    Treat the rules as read-only: they may be shared with other requests of this process.
    """
    if ensure_default_rules(merchant_id=merchant_id):
        return _load_rules(merchant_id)
    return _RULES.get_or_load(merchant_id, None, lambda: _load_rules(merchant_id))


def _load_rules(merchant_id: int) -> list[FraudRule]:
    stage = {Outcome.ALLOW: 0, Outcome.DENY: 1, Outcome.REVIEW: 2}
    rules = list(FraudRule.objects.filter(merchant_id=merchant_id, enabled=True))
    return sorted(rules, key=lambda r: (stage[Outcome(r.action)], r.order, r.pk))


def rules_changed(*, merchant_id: int) -> None:
    """Call in the transaction that changed a merchant's rules: every process reloads them."""
    versions.bump(merchant_id, versions.FRAUD_RULES)


# A merchant's list entries per process, valid while its `fraud_lists` version is current:
# all of them when there are few (matched in process: no query per assessment), or
# only the fact that there are many (matched by a query).
_LISTS = versions.VersionedCache(versions.FRAUD_LISTS)
LIST_ENTRIES_HELD = 1_000


@dataclass(frozen=True)
class ListsCopy:
    """How many entries a merchant's lists hold (at least), and (when few) the entries
    themselves: ("allow" or "block", kind, value, expires_at)."""

    count: int
    entries: tuple[tuple[str, str, str, datetime | None], ...] | None


def _load_lists(merchant_id: int) -> ListsCopy:
    rows = []
    for which, model in (("allow", AllowlistEntry), ("block", BlocklistEntry)):
        rows += [
            (which, kind, value, expires_at) for kind, value, expires_at in
            model.objects.filter(merchant_id=merchant_id).order_by("pk")
            .values_list("kind", "value", "expires_at")[: LIST_ENTRIES_HELD + 1]
        ]
    if len(rows) > LIST_ENTRIES_HELD:
        return ListsCopy(count=len(rows), entries=None)
    return ListsCopy(count=len(rows), entries=tuple(rows))


def lists_copy(merchant_id: int) -> ListsCopy:
    """The merchant's list entries (live or not, when few); cached per version.

    Where nothing is cached (outside an API request, or the version was not read) only
    whether there are entries is read: the entries would serve one assessment only.
    """
    if versions.current(merchant_id, versions.FRAUD_LISTS) is None:
        has_any = (
            AllowlistEntry.objects.filter(merchant_id=merchant_id).exists()
            or BlocklistEntry.objects.filter(merchant_id=merchant_id).exists()
        )
        return ListsCopy(count=int(has_any), entries=None)
    return _LISTS.get_or_load(merchant_id, None, lambda: _load_lists(merchant_id))


def has_list_entries(merchant_id: int) -> bool:
    """Whether the merchant has any allow or block list entry (live or not); cached per version."""
    return lists_copy(merchant_id).count > 0


def lists_changed(*, merchant_id: int) -> None:
    """Call in the transaction that changed a merchant's list entries."""
    versions.bump(merchant_id, versions.FRAUD_LISTS)
