"""A private copy of the whole service for fault tests: PostgreSQL, Redis, gunicorn, Celery.

Each test gets its own PostgreSQL cluster (a copy of a migrated template cluster made
once per session with `initdb`), its own `redis-server`, gunicorn and a Celery worker,
all on free ports of 127.0.0.1, so a test can kill any of them without touching the
shared services. Every process is stopped at the end of the test, also on failure.
"""

from __future__ import annotations

import contextlib
import glob
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def postgres_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return found[-1] if found else shutil.which(name)


def available() -> str | None:
    """Why the fault stack cannot run here, or None if it can."""
    for tool in ("initdb", "pg_ctl"):
        if postgres_bin(tool) is None:
            return f"{tool} not found"
    if shutil.which("redis-server") is None:
        return "redis-server not found"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser (PostgreSQL refuses root)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, predicate, timeout: float = 60.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except Exception:  # noqa: S112 - not up yet
            result = None
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout} s")


class Postgres:
    """One PostgreSQL cluster in a directory, run as an unprivileged user when we are root."""

    def __init__(self, datadir: Path, port: int) -> None:
        self.datadir, self.port = datadir, port
        self.log = datadir.parent / f"{datadir.name}.log"

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)

    @classmethod
    def init(cls, datadir: Path) -> Postgres:
        datadir.mkdir(parents=True)
        pg = cls(datadir, 0)
        pg.chown()
        pg._run(postgres_bin("initdb"), "-D", str(datadir), "-U", "postgres", "-A", "trust", "--no-sync",
                "-E", "UTF8", "--locale=C")
        return pg

    def chown(self) -> None:
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "postgres:postgres", str(self.datadir.parent)], check=True)

    def start(self) -> None:
        opts = (f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c max_connections=60 -c shared_buffers=32MB")
        self._run(postgres_bin("pg_ctl"), "-D", str(self.datadir), "-l", str(self.log), "-o", opts,
                  "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(postgres_bin("pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "-t", "60", "stop")

    def url(self, db: str = "vouchers") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def sql(self, query: str) -> str:
        out = subprocess.run(["psql", self.url(), "-tAc", query], capture_output=True, text=True, timeout=60,
                             check=True)
        return out.stdout.strip()


@dataclass
class Outcome:
    status: int | None
    body: dict | None = None
    error: str = ""


@dataclass
class Stack:
    tmp: Path
    pg: Postgres
    redis_port: int
    keys_file: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    http_port: int = 0

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "CELERY_"))}
        env.update(
            DATABASE_URL=self.pg.url(), REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            VOUCHER_DEV_KEYS_FILE=str(self.keys_file), DJANGO_DEBUG="false", DB_CONN_MAX_AGE="60",
            API_RATE_PER_KEY="1000000/m", API_RATE_PER_ADDRESS="1000000/m",
            REDIS_CONNECT_TIMEOUT="0.5", REDIS_TIMEOUT="1", CELERY_VISIBILITY_TIMEOUT="5",
            GUNICORN_BIND=f"127.0.0.1:{self.http_port}", GUNICORN_WORKERS="2", GUNICORN_THREADS="4",
            GUNICORN_TIMEOUT="20", GUNICORN_GRACEFUL_TIMEOUT="3", PYTHONUNBUFFERED="1",
        )
        return env

    def manage(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "python"), "manage.py", *args], cwd=ROOT, env=self.env(),
                              capture_output=True, text=True, timeout=timeout, check=check)

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def start_redis(self) -> None:
        self._spawn("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", str(self.tmp)])
        wait_until("redis up",
                   lambda: socket.create_connection(("127.0.0.1", self.redis_port), 1).close() or 1)

    def stop_redis(self) -> None:
        self.kill("redis", signal.SIGKILL)

    def start_gunicorn(self) -> None:
        self._spawn("gunicorn", [str(BIN / "gunicorn"), "-c", "config/gunicorn.conf.py"])
        wait_until("gunicorn up", lambda: self.get("/healthz").status == 200, timeout=180)

    def gunicorn_workers(self) -> list[int]:
        master = self.procs["gunicorn"].pid
        children = []
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                children.append(int(stat.split("/")[2]))
        return children

    def start_celery(self) -> None:
        self._spawn("celery", [str(BIN / "celery"), "-A", "config", "worker", "-l", "INFO", "-c", "1",
                               "--without-gossip", "--without-mingle", "--without-heartbeat",
                               "-n", f"fault-{uuid.uuid4().hex[:6]}@%h"])

    def kill(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def close(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGKILL if name == "celery" else signal.SIGTERM)
        with contextlib.suppress(subprocess.CalledProcessError):
            self.pg.stop("immediate")

    # --- HTTP -----------------------------------------------------------------------

    def request(self, method: str, path: str, body: dict | None = None,
                headers: dict | None = None) -> Outcome:
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=30)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            hdrs = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, body=payload, headers=hdrs)
            response = conn.getresponse()
            raw = response.read()
            try:
                data = json.loads(raw) if raw else None
            except ValueError:
                data = None
            return Outcome(response.status, data)
        except (OSError, http.client.HTTPException) as exc:
            return Outcome(None, None, exc.__class__.__name__)
        finally:
            conn.close()

    def get(self, path: str) -> Outcome:
        return self.request("GET", path)

    def issue(self, api_key: str, sku: str, quantity: int = 1, *, retries: int = 0) -> Outcome:
        """One issuance; with `retries`, a lost answer is asked again with the same Idempotency-Key,
        as a storefront would (a replay, or a run if the first attempt never committed)."""
        key = uuid.uuid4().hex
        for _ in range(retries + 1):
            outcome = self.request("POST", "/api/v1/issuances/", {"sku": sku, "quantity": quantity},
                                   {"Authorization": f"Api-Key {api_key}", "Idempotency-Key": key})
            code = (outcome.body or {}).get("code")
            in_progress = outcome.status == 409 and code == "idempotency_in_progress"
            if outcome.status is not None and not in_progress:
                return outcome
            time.sleep(0.25)
        return outcome

    def invariants(self) -> subprocess.CompletedProcess:
        return self.manage("check_invariants", check=False)


def load(stack: Stack, *, api_key: str, sku: str, clients: int, requests_each: int,
         pause: float = 0.0, retries: int = 0) -> list[Outcome]:
    """`clients` threads, each sending `requests_each` issuances of one code; every outcome kept."""
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(requests_each):
            outcome = stack.issue(api_key, sku, retries=retries)
            with lock:
                outcomes.append(outcome)
            if pause:
                time.sleep(pause)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


VERIFY_SCRIPT = """
import json, sys
from vouchers.models import Issuance
claims = json.load(sys.stdin)
missing = []
for issuance_id, code_ids in claims.items():
    row = Issuance.objects.filter(pk=issuance_id).first()
    held = sorted(row.codes.values_list("pk", flat=True)) if row else None
    if row is None or row.status != "issued" or held != sorted(code_ids):
        missing.append(issuance_id)
print(json.dumps({"checked": len(claims), "missing": missing}))
"""


def acknowledged_issuances_are_stored(stack: Stack, outcomes: list[Outcome]) -> dict:
    """Every 201 a client received names an issued issuance holding exactly the codes it was given."""
    claims = {o.body["id"]: [c["id"] for c in o.body["codes"]] for o in outcomes if o.status == 201}
    result = subprocess.run([str(BIN / "python"), "manage.py", "shell", "-c", VERIFY_SCRIPT], cwd=ROOT,
                            env=stack.env(), input=json.dumps(claims), capture_output=True, text=True,
                            timeout=120, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])
