"""Helpers for the audit tests: tampering with the table the way an intruder with SQL access would."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.db import connection

from vouchers.audit.guards import create_triggers, drop_triggers


def tamper(sql: str, params: list | None = None) -> int:
    """Run raw SQL on the audit table with its triggers out of the way (as an intruder could)."""
    drop_triggers(connection)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params or [])
            return cursor.rowcount
    finally:
        create_triggers(connection)


@pytest.fixture
def other_merchant(db):
    from tests.factories import MerchantFactory

    return MerchantFactory()


@pytest.fixture(autouse=True)
def clean_cache():
    """Rate limits and counters start empty (local memory, or this run's Redis db)."""
    caches["default"].clear()
    yield
    caches["default"].clear()
