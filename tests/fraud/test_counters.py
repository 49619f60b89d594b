"""The counter store: sliding windows, distinct counts, and failing closed."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from fraud import counters
from fraud.exceptions import RiskCheckUnavailable

CLOSED_PORT_REDIS = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:6390/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
    }
}


def test_window_counts_increments_and_forgets_them_after_the_window(clock):
    # given three hits in a 60-second window
    for _ in range(3):
        hit = counters.window_incr("t:a", window=60)
    # then the third sees 3
    assert hit.total == 3
    # when 59 seconds pass, they still count; once the window and its last slice are over, none do
    clock.advance(59)
    assert counters.window_total("t:a", window=60) == 3
    clock.advance(61 + counters.slice_seconds(60))
    assert counters.window_total("t:a", window=60) == 0


def test_window_slides_instead_of_resetting_at_a_boundary(clock):
    # given 2 hits late in one minute
    clock.advance(50)
    counters.window_incr("t:b", window=60)
    counters.window_incr("t:b", window=60)
    clock.advance(20)
    # when a third comes 20 seconds later, in the next minute
    hit = counters.window_incr("t:b", window=60)
    # then the earlier ones still count (a fixed bucket would have reset)
    assert hit.total == 3


def test_undo_takes_back_exactly_one_increment():
    # given two hits
    counters.window_incr("t:c", window=60)
    second = counters.window_incr("t:c", window=60, delta=4)
    # when the second is undone
    counters.window_undo(second)
    # then only the first counts
    assert counters.window_total("t:c", window=60) == 1


def test_clear_forgets_the_window():
    counters.window_incr("t:d", window=60)
    counters.window_clear("t:d", window=60)
    assert counters.window_total("t:d", window=60) == 0


def test_distinct_counts_each_member_once_over_the_window(clock):
    # given customers a, b, a, c seen under one key
    counts = [counters.distinct_add("t:e", m, window=600) for m in ("a", "b", "a")]
    clock.advance(300)
    counts.append(counters.distinct_add("t:e", "c", window=600))
    # then the counts grow only on new members, across slices
    assert counts == [1, 2, 2, 3]
    # and after the window only the newest remains
    clock.advance(600)
    assert counters.distinct_add("t:e", "c", window=600) == 1


def test_fixed_buckets_count_separately():
    assert [counters.bucket_incr("t:f", bucket=7, ttl=60) for _ in range(2)] == [1, 2]
    assert counters.bucket_incr("t:f", bucket=8, ttl=60) == 1
    assert counters.bucket_counts("t:f", buckets=[6, 7, 8]) == [0, 2, 1]
    assert [counters.distinct_bucket_add("t:g", m, bucket=1, ttl=60) for m in "xyx"] == [1, 2, 2]


def test_subject_keys_hold_no_personal_data():
    key = counters.subject_key("vel", 3, "alice@example.com")
    assert "alice" not in key
    assert key.startswith("fraud:v1:vel:")


@override_settings(CACHES=CLOSED_PORT_REDIS)
@pytest.mark.parametrize(
    "operation",
    [
        lambda: counters.window_incr("t:x", window=60),
        lambda: counters.window_total("t:x", window=60),
        lambda: counters.window_clear("t:x", window=60),
        lambda: counters.distinct_add("t:x", "m", window=60),
        lambda: counters.bucket_incr("t:x", bucket=1, ttl=60),
        lambda: counters.bucket_counts("t:x", buckets=[1]),
        lambda: counters.get_values(["t:x"]),
        lambda: counters.set_value("t:x", 1, ttl=60),
        lambda: counters.add_value("t:x", 1, ttl=60),
    ],
)
def test_every_operation_fails_closed_when_redis_is_unreachable(operation):
    with pytest.raises(RiskCheckUnavailable) as exc:
        operation()
    assert exc.value.status == 429
    assert exc.value.extra["retry_after"] == 30


def test_a_cache_that_swallows_errors_is_refused(settings):
    # given a Redis cache configured to ignore its errors
    settings.CACHES = {"default": {**CLOSED_PORT_REDIS["default"],
                                   "OPTIONS": {"IGNORE_EXCEPTIONS": True}}}
    # then counting refuses, and the system check reports it
    with pytest.raises(RiskCheckUnavailable):
        counters.window_incr("t:y", window=60)
    assert [m.id for m in run_checks() if m.id.startswith("fraud.")] == ["fraud.E002"]


def test_on_redis_counters_expire_and_distinct_members_are_hashed_sets():
    from django.core.cache import caches

    cache = caches["default"]
    if not counters._is_redis(cache):
        pytest.skip("needs REDIS_URL")
    from django_redis import get_redis_connection

    # when a counter and a distinct set are written
    counters.window_incr("t:r1", window=60)
    counters.distinct_add("t:r2", "alice@example.com", window=60)
    # then both keys carry a TTL, and the set holds a hash, not the member
    conn = get_redis_connection("default")
    (counter_key,) = conn.keys(cache.make_key("t:r1:*"))
    (set_key,) = conn.keys(cache.make_key("t:r2:*"))
    assert 0 < conn.ttl(counter_key) <= 80
    assert 0 < conn.ttl(set_key) <= 80
    assert conn.type(set_key) == b"set"
    members = conn.smembers(set_key)
    assert len(members) == 1
    assert b"alice" not in next(iter(members))
