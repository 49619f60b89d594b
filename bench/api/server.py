"""Server control: the bench databases, Redis, gunicorn start and stop, child steps, CPU accounting."""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.api.common import ENTRY_POINT, GUNICORN_CONF, ROOT


@dataclass
class Server:
    """Databases, Redis and gunicorn of one run, child processes with the bench
    environment, and the CPU accounting of the server side."""

    args: argparse.Namespace
    tmp: Path
    env: dict[str, str]
    results: dict = field(default_factory=dict)
    gunicorn: subprocess.Popen | None = None
    gunicorn_log: Path | None = None

    # --- environment and databases ----------------------------------------------------

    def db_url(self, name: str) -> str:
        return f"{self.args.pg.rstrip('/')}/{name}"

    def child(self, *argv: str, database: str, timeout: float, api_key: str = "") -> dict:
        """Run an internal step in a child process with the bench environment; its JSON."""
        env = {**self.env, "DATABASE_URL": self.db_url(database)}
        if api_key:
            env["BENCH_API_KEY"] = api_key
        out = self.tmp / f"child-{secrets.token_hex(4)}.json"
        proc = subprocess.run(
            [sys.executable, str(ENTRY_POINT), *argv, "--out", str(out)],
            cwd=ROOT, env=env, timeout=timeout, capture_output=True, text=True,
        )
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
            raise RuntimeError(f"step {argv[0]} failed with exit code {proc.returncode}")
        return json.loads(out.read_text())

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.db_url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.db_url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def flush_redis(self) -> None:
        import redis

        redis.Redis.from_url(self.args.redis, socket_timeout=5).flushdb()

    # --- gunicorn ---------------------------------------------------------------------

    def start_gunicorn(self, database: str) -> None:
        a = self.args
        env = {
            **self.env, "DATABASE_URL": self.db_url(database),
            "GUNICORN_BIND": f"127.0.0.1:{a.port}", "GUNICORN_WORKER_CLASS": a.worker_class,
        }
        if a.workers:
            env["GUNICORN_WORKERS"] = str(a.workers)
        if a.threads:
            env["GUNICORN_THREADS"] = str(a.threads)
        self.gunicorn_log = self.tmp / f"gunicorn-{database}.log"
        log = self.gunicorn_log.open("ab")
        self.gunicorn = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.gunicorn.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.gunicorn_log.read_text()[-3000:]}")
            try:
                status, _ = self.http_once("POST", "/bench/baseline/", {"id": 1})
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError("gunicorn did not answer within 60 s")

    def stop_gunicorn(self) -> None:
        proc, self.gunicorn = self.gunicorn, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)  # our own session: the master and its workers
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def http_once(self, method: str, path: str, body: dict, headers: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.args.port, timeout=10)
        try:
            conn.request(method, path, json.dumps(body),
                         {"Content-Type": "application/json", **(headers or {})})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    # --- CPU accounting ---------------------------------------------------------------

    def cpu_snapshot(self, database: str) -> dict:
        """CPU seconds so far of gunicorn (master, workers, reaped workers), of the
        PostgreSQL backends connected to our database, and of the Redis server."""
        import psycopg
        import redis

        snap: dict = {"gunicorn": 0.0, "postgres": {}, "redis": 0.0}
        if self.gunicorn is not None:
            master = self.gunicorn.pid
            snap["gunicorn"] = proc_cpu_seconds(master, with_children=True) + sum(
                proc_cpu_seconds(pid) for pid in child_pids(master)
            )
        with psycopg.connect(self.db_url(database), autocommit=True) as conn:
            pids = [row[0] for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [database],
            )]
        snap["postgres"] = {pid: proc_cpu_seconds(pid) for pid in pids}
        try:
            info = redis.Redis.from_url(self.args.redis, socket_timeout=5).info("server")
            snap["redis"] = proc_cpu_seconds(int(info["process_id"]))
        except Exception:  # noqa: BLE001 (CPU accounting is best effort)
            snap["redis"] = 0.0
        return snap

    @staticmethod
    def cpu_per_request(before: dict, after: dict, requests: int) -> dict:
        """Milliseconds of CPU per request. PostgreSQL counts backends present at the end
        (a backend that started during the run counts whole); one that ended is missed."""
        if not requests:
            return {}
        postgres = sum(cpu - before["postgres"].get(pid, 0.0) for pid, cpu in after["postgres"].items())
        return {
            "gunicorn": 1000 * (after["gunicorn"] - before["gunicorn"]) / requests,
            "postgres": 1000 * postgres / requests,
            "redis": 1000 * (after["redis"] - before["redis"]) / requests,
        }

    def settle(self) -> None:
        """Let requests still queued in gunicorn from the previous run finish."""
        time.sleep(self.args.settle)



CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """CPU time (user + system) of one process from /proc; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if with_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime (reaped workers)
    return ticks / CLOCK_TICKS


def child_pids(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []



def bench_env(args: argparse.Namespace) -> dict[str, str]:
    """The environment of gunicorn and every child: fresh keys, high rate limits."""
    def key() -> str:
        return base64.b64encode(secrets.token_bytes(32)).decode()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "DJANGO_", "VOUCHER_"))}
    env.update({
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DJANGO_ENV": "development",
        "DJANGO_DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "VOUCHER_ENCRYPTION_KEYS": f"bench1:{key()}",
        "VOUCHER_PRIMARY_KEY_ID": "bench1",
        "VOUCHER_INDEX_KEY": key(),
        "REDIS_URL": args.redis,
        "API_RATE_PER_KEY": "10000000/m",
        "API_RATE_PER_ADDRESS": "10000000/m",
        # Persistent connections outlive a run, so the CPU of each PostgreSQL backend can
        # be read before and after it (the default, 60 s, would recycle some mid-run).
        "DB_CONN_MAX_AGE": "600",
        "PYTHONPATH": str(ROOT),
    })
    env.pop("CELERY_BROKER_URL", None)
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    return env
