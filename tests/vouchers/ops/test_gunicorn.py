"""gunicorn as deployed (config/gunicorn.conf.py): its limits against the API's, and /metrics
summed over worker processes.

The server runs on a free port of 127.0.0.1 with an empty SQLite file: nothing here
needs a table (probes, metrics, and refusals that happen before any query).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
GUNICORN = Path(sys.executable).with_name("gunicorn")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gunicorn")
    (tmp / "metrics").mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}", GUNICORN_BIND=f"127.0.0.1:{port}",
               GUNICORN_WORKERS="2", PROMETHEUS_MULTIPROC_DIR=str(tmp / "metrics"), DJANGO_DEBUG="false",
               VOUCHER_DEV_KEYS_FILE=str(tmp / "keys.json"))
    proc = subprocess.Popen([str(GUNICORN), "-c", "config/gunicorn.conf.py"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180  # a busy machine can take a while to import Django twice
        while True:
            try:
                if request(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"gunicorn did not start (exit code {proc.poll()})")
            time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def request(port: int, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


def test_a_40_mb_body_is_refused_413_from_its_length_alone(server):
    # given a client that declares 40 MB and sends only its headers
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    conn.putrequest("POST", "/api/v1/codes/check/")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(40 * 1024 * 1024))
    conn.endheaders()
    response = conn.getresponse()
    # then the answer comes without the body being sent: 413 problem+json
    assert response.status == 413
    assert response.getheader("Content-Type") == "application/problem+json"
    assert json.loads(response.read())["code"] == "payload_too_large"
    conn.close()


def test_the_largest_headers_the_api_reads_pass_gunicorns_limits(server):
    headers = {"Idempotency-Key": "k" * 255, "Authorization": "Api-Key " + "x" * 120}
    assert request(server, "GET", "/healthz", headers)[0] == 200


def test_a_header_over_gunicorns_limit_is_refused_by_gunicorn(server):
    # gunicorn answers this itself (plain text, before the app): the reverse proxy's
    # header limit (docs/deploy.md) is what clients meet in production.
    status, _type, _body = request(server, "GET", "/healthz", {"X-Big": "y" * 9000})
    assert status in {400, 431}  # 431 from gunicorn 24 on, 400 before


def test_metrics_under_gunicorn_are_prometheus_text_summed_over_workers(server):
    for _ in range(4):
        assert request(server, "GET", "/api/v1/nothing-here/")[0] == 404
    status, content_type, body = request(server, "GET", "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    text = body.decode()
    assert "# TYPE vouchers_codes_issued_total counter" in text
    assert "vouchers_codes_issued_total 0.0" in text
