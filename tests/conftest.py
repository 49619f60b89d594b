"""Shared fixtures. Codes are generated at test time; no plaintext code is committed."""

from __future__ import annotations

import pytest
from django.db import connection


def pytest_collection_modifyitems(config, items):
    """Tests marked `postgres` need PostgreSQL; on the embedded default they are skipped."""
    import django
    from django.conf import settings

    django.setup()
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" in engine:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Real hashers cost ~0.5 s per user; tests only need a password to check."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _default_language():
    """A request with Accept-Language leaves its language active in the thread (Django's
    LocaleMiddleware does not reset it): each test starts and ends in the default one."""
    from django.utils import translation

    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _forget_seeded_fraud_profiles():
    """The per-process memo of seeded merchants must not outlive a test's rolled-back rows."""
    from fraud.services import rules

    rules._SEEDED.clear()


@pytest.fixture(autouse=True)
def _forget_cached_agreements():
    """The ledger's in-process copies of agreements must not outlive a test's rolled-back
    rows either: ids are reused, and a version left in the cache would still match."""
    from partners.services import ledger

    ledger._COVERING.clear()


@pytest.fixture(autouse=True)
def _demo_credentials_in_tmp(settings, tmp_path):
    """`demo` remembers what it printed in a file; tests keep theirs away from the developer's."""
    settings.DEMO_CREDENTIALS_FILE = tmp_path / "demo-credentials.json"


@pytest.fixture(autouse=True)
def _audit_triggers_out_of_the_flush(request):
    """A transactional test ends with a flush, which on SQLite is a DELETE the audit log's
    append-only trigger refuses: drop the triggers just before it (the flush's post_migrate
    signal creates them again). PostgreSQL flushes with TRUNCATE, which fires no row trigger."""
    marker = request.node.get_closest_marker("django_db")
    transactional = "transactional_db" in request.fixturenames or bool(
        marker and marker.kwargs.get("transaction")
    )
    if not transactional:
        yield
        return
    request.getfixturevalue("transactional_db")  # set up first, so torn down (flushed) after this
    yield
    if connection.vendor == "sqlite":
        from vouchers.audit.guards import drop_triggers

        drop_triggers(connection)


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def merchant(db):
    from tests.factories import MerchantFactory

    return MerchantFactory()


@pytest.fixture
def product(merchant):
    from tests.factories import ProductFactory

    return ProductFactory(merchant=merchant)


class RedisRoundTrips:
    """Counts requests sent to Redis: one per command, one per pipeline (MULTI/EXEC)."""

    def __init__(self) -> None:
        self.count = 0
        self.commands: list[str] = []


@pytest.fixture
def redis_round_trips(monkeypatch) -> RedisRoundTrips:
    """Count Redis round trips (django-redis and direct connections alike)."""
    import redis

    counter = RedisRoundTrips()
    real_command = redis.Redis.execute_command
    real_pipeline = redis.client.Pipeline.execute

    def command(self, *args, **kwargs):
        counter.count += 1
        counter.commands.append(str(args[0]))
        return real_command(self, *args, **kwargs)

    def pipeline(self, *args, **kwargs):
        if self.command_stack:
            counter.count += 1
            counter.commands.append("PIPELINE:" + ",".join(str(c[0][0]) for c in self.command_stack))
        return real_pipeline(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "execute_command", command)
    monkeypatch.setattr(redis.client.Pipeline, "execute", pipeline)
    return counter


@pytest.fixture
def eager_celery():
    """Tasks run in-process (as in the embedded default), also when REDIS_URL makes Celery use a broker."""
    from config.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


@pytest.fixture
def log_stream():
    """Every log record, as production writes it (scrubbing filter, JSON lines), on the root logger."""
    import io
    import logging

    from config.logs import CodeScrubbingFilter, JsonLogFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(CodeScrubbingFilter())
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous)
