"""A merchant's few list entries are matched in process; many are matched by a query.

Both ways must decide alike: every kind of entry, expiry, and allow beating block.
The request's versions are read as the API's gate would, so the copy is kept.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from config import versions
from fraud.models import AllowlistEntry, BlocklistEntry
from fraud.services import rules
from fraud.services.assessment import assess


@pytest.fixture(params=["held", "queried"])
def lists_path(request, monkeypatch, merchant):
    token = versions.start_request()
    key = versions.key(merchant.pk, versions.FRAUD_LISTS)
    versions.remember({key: 7}, [key])
    rules._LISTS.clear()
    if request.param == "queried":
        monkeypatch.setattr(rules, "LIST_ENTRIES_HELD", 1)
        BlocklistEntry.objects.create(merchant=merchant, kind="customer", value="filler-1")
        BlocklistEntry.objects.create(merchant=merchant, kind="customer", value="filler-2")
    yield request.param
    versions.end_request(token)
    rules._LISTS.clear()


def held(merchant) -> bool:
    return rules.lists_copy(merchant.pk).entries is not None


@pytest.mark.parametrize(
    ("kind", "value", "fields"),
    [
        ("customer", "bad-cust", {"customer": "bad-cust"}),
        ("email", "Fraud.Ster+x@gmail.com", {"email": "fraudster@gmail.com"}),
        ("email_domain", "mailinator.com", {"email": "x@eu.mailinator.com"}),
        ("device", "dev-9", {"device_id": "dev-9"}),
        ("ip", "203.0.113.9", {"ip": "::ffff:203.0.113.9"}),
        ("cidr", "198.51.100.0/24", {"ip": "198.51.100.77"}),
        ("cidr", "2001:db8:abcd::/48", {"ip": "2001:db8:abcd:12::1"}),
    ],
)
def test_every_kind_of_entry_matches_the_same_held_or_queried(lists_path, make_ctx, merchant, kind, value,
                                                              fields):
    entry = BlocklistEntry(merchant=merchant, kind=kind, value=value)
    entry.full_clean()
    entry.save()
    denied = assess(ctx=make_ctx(**fields))
    assert held(merchant) == (lists_path == "held")
    assert (denied.outcome, denied.reasons) == ("deny", [f"blocklist_{kind}"])
    assert assess(ctx=make_ctx(customer="someone", ip="192.0.2.1", email="a@example.org")).outcome == "allow"


def test_an_expired_entry_no_longer_blocks_held_or_queried(lists_path, make_ctx, merchant, clock):
    now = datetime.fromtimestamp(clock(), tz=UTC)  # the fraud checks' clock
    BlocklistEntry.objects.create(merchant=merchant, kind="device", value="d",
                                  expires_at=now - timedelta(seconds=1))
    BlocklistEntry.objects.create(merchant=merchant, kind="device", value="e",
                                  expires_at=now + timedelta(days=1))
    assert assess(ctx=make_ctx(device_id="d")).outcome == "allow"
    assert assess(ctx=make_ctx(device_id="e")).outcome == "deny"
    assert held(merchant) == (lists_path == "held")


def test_allow_beats_block_held_or_queried(lists_path, make_ctx, merchant):
    AllowlistEntry.objects.create(merchant=merchant, kind="customer", value="vip")
    BlocklistEntry.objects.create(merchant=merchant, kind="ip", value="203.0.113.1")
    assessment = assess(ctx=make_ctx(customer="vip", ip="203.0.113.1"))
    assert (assessment.outcome, assessment.reasons, assessment.score) == ("allow", ["allowlist_customer"], 0)
    assert assess(ctx=make_ctx(customer="other", ip="203.0.113.1")).reasons == ["blocklist_ip"]
