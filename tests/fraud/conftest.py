"""Fixtures for the fraud tests: a frozen clock, a clean counter store, eager alerts."""

from __future__ import annotations

import pytest
from django.core.cache import caches

from fraud.context import RiskContext

START = 1_800_000_000.0  # a whole hour and day boundary, far from any real "now"


class FrozenClock:
    """Stands in for fraud.clock.now: time moves only when a test says so."""

    def __init__(self, start: float = START) -> None:
        self.current = start

    def __call__(self) -> float:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += seconds


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def clock(monkeypatch) -> FrozenClock:
    frozen = FrozenClock()
    monkeypatch.setattr("fraud.clock.now", frozen)
    return frozen


@pytest.fixture(autouse=True)
def clean_counters(clock):
    """Every test starts with an empty counter store (local memory, or this run's Redis db)."""
    caches["default"].clear()
    yield
    caches["default"].clear()


@pytest.fixture
def eager_alerts(settings, mailoutbox, django_capture_on_commit_callbacks):
    """Alert tasks run in-process right after commit, mails land in `mailoutbox`.

    Yields a context manager factory: `with eager_alerts(): ...` runs the on-commit
    callbacks of the block (tests run inside one transaction that never commits).
    """
    from config.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield lambda: django_capture_on_commit_callbacks(execute=True)
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


@pytest.fixture
def storefront(merchant):
    from tests.factories import StorefrontFactory

    return StorefrontFactory(merchant=merchant)


@pytest.fixture
def make_ctx(merchant, storefront, product):
    """A RiskContext for this merchant's storefront and product, fields overridable.

    Like the voucher services' (vouchers.services.risk.context_for), it counts previous
    orders in the voucher tables.
    """
    from vouchers.services.risk import previous_orders

    def make(**overrides) -> RiskContext:
        fields = {
            "merchant_id": merchant.pk, "action": "issue", "api_key_id": "key-1",
            "storefront_id": storefront.pk, "product_id": product.pk, "quantity": 1,
            "previous_orders": previous_orders,
        }
        fields.update(overrides)
        return RiskContext(**fields)

    return make


@pytest.fixture
def only_rules(merchant):
    """Replace the merchant's default rules by the given ones: only_rules(dict(kind=..., ...), ...)."""
    from fraud.models import FraudRule
    from fraud.services.rules import ensure_default_rules

    def make(*specs: dict) -> list[FraudRule]:
        ensure_default_rules(merchant_id=merchant.pk)
        FraudRule.objects.filter(merchant=merchant).delete()
        rules = []
        for n, spec in enumerate(specs):
            spec = {"name": f"rule {n}", "order": 10 * (n + 1), **spec}
            rule = FraudRule(merchant=merchant, **spec)
            rule.full_clean()
            rule.save()
            rules.append(rule)
        return rules

    return make


@pytest.fixture
def generated_batch(product):
    """A generated batch of 5 available codes."""
    from vouchers.services.generation import generate_batch

    return generate_batch(product=product, count=5)


def random_supplier_code() -> str:
    """A supplier-style code made at test time: GC-dddd-dddd-dddd-dddd."""
    import secrets

    return "GC-" + "-".join(f"{secrets.randbelow(10_000):04d}" for _ in range(4))


@pytest.fixture
def imported_batch(product):
    """An imported batch of 8 supplier codes (generated now, never committed)."""
    from django.utils import timezone

    from vouchers import codeformat
    from vouchers.models import Batch
    from vouchers.services.batches import finish_batch, start_batch
    from vouchers.services.code_writer import seal_code, write_codes

    batch = start_batch(product=product, source=Batch.Source.IMPORTED, case_sensitive=False,
                        valid_from=None, valid_until=None, reference="supplier.csv")
    codes = {random_supplier_code() for _ in range(8)}
    rows = [seal_code(display=c, normalised=codeformat.normalise(c, case_sensitive=False), batch_id=batch.pk)
            for c in codes]
    loaded = write_codes(batch_id=batch.pk, rows=rows, now=timezone.now())
    return finish_batch(batch=batch, loaded=loaded)


@pytest.fixture
def staff_user(merchant):
    from tests.factories import StaffFactory

    return StaffFactory(merchant=merchant, user__email="security@merchant.example").user
