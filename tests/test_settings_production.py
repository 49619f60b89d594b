"""The production profile: refuses to start without its secrets, passes check --deploy cleanly.

Each case runs `manage.py check --deploy` in a fresh process, because settings are
read once at import time.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = (
    "SECRET_KEY", "VOUCHER_ENCRYPTION_KEYS", "VOUCHER_PRIMARY_KEY_ID", "VOUCHER_INDEX_KEY", "ALLOWED_HOSTS",
    "REDIS_URL", "PARTNER_SIGNING_KEYS", "PARTNER_SIGNING_KEY_ID",
)
# Variables of the calling environment that would leak into the profile under test.
INHERITED = (*REQUIRED, "DJANGO_ENV", "DJANGO_DEBUG", "CELERY_BROKER_URL", "DATABASE_URL",
             "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "VOUCHER_DEV_KEYS_FILE", "EMAIL_URL",
             "WEBHOOK_REQUIRE_HTTPS", "WEBHOOK_ALLOW_PRIVATE_ADDRESSES")


def b64key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def production_env(**overrides: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in INHERITED}
    env.update(
        DJANGO_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(64),
        VOUCHER_ENCRYPTION_KEYS=f"k2025:{b64key()},k2026:{b64key()}",
        VOUCHER_PRIMARY_KEY_ID="k2026",
        VOUCHER_INDEX_KEY=b64key(),
        PARTNER_SIGNING_KEYS=f"sig2025:{b64key()},sig2026:{b64key()}",
        PARTNER_SIGNING_KEY_ID="sig2026",
        ALLOWED_HOSTS="vouchers.example.com",
        # Rate limits and fraud counters must be shared by every process (never checked
        # over the network by `check`).
        REDIS_URL="redis://127.0.0.1:6379/0",
        # Production must never fall back to (or create) the development key file.
        VOUCHER_DEV_KEYS_FILE=str(ROOT / ".local" / "must-not-exist.json"),
    )
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def test_production_with_every_secret_passes_check_deploy_with_nothing_silenced():
    # when
    result = check_deploy(production_env())
    # then
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues (0 silenced)." in output
    assert "WARNING" not in output
    assert "?: (" not in output
    assert not (ROOT / ".local" / "must-not-exist.json").exists()


@pytest.mark.parametrize("missing", REQUIRED)
def test_production_refuses_to_start_without_each_required_variable(missing):
    # when
    result = check_deploy(production_env(**{missing: None}))
    # then it stops before doing anything, naming the variable
    assert result.returncode != 0
    assert f"{missing} must be set when DJANGO_ENV=production" in result.stderr
    assert "System check identified" not in result.stdout + result.stderr


@pytest.mark.parametrize("empty", REQUIRED)
def test_production_refuses_an_empty_required_variable(empty):
    result = check_deploy(production_env(**{empty: ""}))
    assert result.returncode != 0
    assert empty in result.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"VOUCHER_INDEX_KEY": base64.b64encode(b"short").decode()},
            "VOUCHER_INDEX_KEY must decode to 32 bytes",
        ),
        ({"VOUCHER_INDEX_KEY": "not base64!"}, "VOUCHER_INDEX_KEY is not valid base64"),
        ({"VOUCHER_ENCRYPTION_KEYS": "justakey"}, "VOUCHER_ENCRYPTION_KEYS entries look like 'id:base64key'"),
        (
            {"VOUCHER_PRIMARY_KEY_ID": "k1999"},
            "VOUCHER_PRIMARY_KEY_ID must name a key in VOUCHER_ENCRYPTION_KEYS",
        ),
        ({"DJANGO_ENV": "staging"}, "DJANGO_ENV must be 'development' or 'production'"),
        ({"WEBHOOK_REQUIRE_HTTPS": "false"}, "WEBHOOK_REQUIRE_HTTPS=false and WEBHOOK_ALLOW_PRIVATE"),
        ({"WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true"}, "are refused when DJANGO_ENV=production"),
    ],
)
def test_production_refuses_malformed_keys_naming_the_variable(overrides, message):
    result = check_deploy(production_env(**overrides))
    assert result.returncode != 0
    assert message in result.stderr
