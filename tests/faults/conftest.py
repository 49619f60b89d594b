"""Fault tests (`-m faults`): a private PostgreSQL, Redis, gunicorn and Celery per test.

They need PostgreSQL's server binaries and redis-server on this machine; they run when
DATABASE_URL points at PostgreSQL (as in CI's second run) and are skipped on the embedded
SQLite default.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.faults.stack import Postgres, Stack, available, free_port


def pytest_collection_modifyitems(config, items):
    import django
    from django.conf import settings

    django.setup()
    reason = None
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        reason = "fault tests run with PostgreSQL (set DATABASE_URL)"
    else:
        reason = available()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "faults" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def template():
    """A migrated cluster with the demo data, stopped: each test starts a copy of it."""
    base = private_dir("vouchers-faults-template-")
    pg = Postgres.init(base / "pg" / "data")
    pg.port = free_port()
    pg.start()
    try:
        subprocess.run(["psql", pg.url("postgres"), "-c", "CREATE DATABASE vouchers"], check=True,
                       capture_output=True, timeout=60)
        stack = Stack(tmp=base, pg=pg, redis_port=free_port(), keys_file=base / "keys.json")
        stack.start_redis()
        stack.manage("migrate", "-v0", timeout=600)
        printed = stack.manage("demo", "--json", timeout=600).stdout
        demo = json.loads(printed[printed.index("{"):])
        stack.kill("redis")
    finally:
        pg.stop("fast")
    yield base, demo
    shutil.rmtree(base, ignore_errors=True)


def private_dir(prefix: str) -> Path:
    """A temporary directory the PostgreSQL user can enter (pytest's own are private to us)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)  # noqa: S103 - a test cluster's directory; the data dir itself is 0700
    return path


@pytest.fixture
def stack(template):
    base, demo = template
    tmp_path = private_dir("vouchers-faults-")
    root = tmp_path / "pg"
    shutil.copytree(base / "pg", root, symlinks=True)
    shutil.copy(base / "keys.json", tmp_path / "keys.json")
    pg = Postgres(root / "data", free_port())
    pg.chown()
    pg.start()
    s = Stack(tmp=tmp_path, pg=pg, redis_port=free_port(), keys_file=tmp_path / "keys.json")
    s.http_port = free_port()
    s.demo = demo
    try:
        s.start_redis()
        yield s
    finally:
        s.close()
        shutil.rmtree(Path(tmp_path), ignore_errors=True)
