"""Each operations test starts with an empty cache: rate limits and fraud counters of earlier
tests (local memory, or this run's Redis db) must not refuse its requests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
