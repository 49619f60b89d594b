"""gunicorn configuration for the voucher inventory API: `gunicorn -c config/gunicorn.conf.py`.

Every setting can be changed from the environment; the defaults are the ones measured
in BENCHMARKS.md ("Storefront API"). The app is I/O-bound (PostgreSQL, Redis) with a
little CPU per request (JSON, HMAC, AES-GCM): gthread workers keep client connections
alive and overlap database waits within a process.

Nothing here logs a request body (codes travel only in bodies); the access log, off
by default, has the request line and status only.

Environment:
  GUNICORN_BIND          address to listen on (default 127.0.0.1:8000; PORT alone also works)
  GUNICORN_WORKERS       processes (default WEB_CONCURRENCY, else cores + 1)
  GUNICORN_WORKER_CLASS  gthread (default) or sync
  GUNICORN_THREADS       threads per gthread worker (default 4)
  GUNICORN_TIMEOUT       seconds a request may run before its worker is restarted (default 30)
  GUNICORN_ACCESS_LOG    "-" for stdout or a file path; unset = no access log
  GUNICORN_MAX_REQUESTS  requests before a worker is recycled (default 10000, 0 = never)
  GUNICORN_LOG_LEVEL     default info
  GUNICORN_CONTROL_SOCKET  path of gunicorn's control socket (default: none, disabled)
Each worker thread keeps one PostgreSQL connection (DB_CONN_MAX_AGE): workers x threads
must stay below the server's max_connections, with room for Celery and operators.
"""

from __future__ import annotations

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _default_bind() -> str:
    port = os.environ.get("PORT", "").strip()
    return f"127.0.0.1:{port}" if port else "127.0.0.1:8000"


wsgi_app = "config.wsgi:application"
bind = [os.environ.get("GUNICORN_BIND", "").strip() or _default_bind()]

worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread").strip() or "gthread"
workers = _int("GUNICORN_WORKERS", _int("WEB_CONCURRENCY", multiprocessing.cpu_count() + 1))
threads = _int("GUNICORN_THREADS", 4) if worker_class == "gthread" else 1
# Idle keep-alive connections from a storefront's server (gthread only).
keepalive = _int("GUNICORN_KEEPALIVE", 5)
backlog = _int("GUNICORN_BACKLOG", 2048)

timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)

# Recycle workers now and then (bounded memory growth); jitter so they do not all
# restart at once.
max_requests = _int("GUNICORN_MAX_REQUESTS", 10_000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", max(max_requests // 10, 0))

# Import Django once in the master: faster worker starts, shared memory. No database
# connection is opened at import time, so none is shared across the fork.
preload_app = os.environ.get("GUNICORN_PRELOAD", "true").lower() not in {"0", "false", "no"}

accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
# Request line, status, size, duration in microseconds: never a body, never a header.
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(D)sus'
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")

# Bounds on what a client may send before Django sees it. gunicorn answers a request
# over them itself (400 in plain HTML, before the application runs), so the reverse
# proxy in front enforces the same limits first, with a problem+json answer (see
# docs/deploy.md). They are consistent with the API's: the longest request line the API
# serves (a path, a cursor and filters) is far below 4,094 bytes; the largest header it
# reads is Idempotency-Key (at most 255 characters) or Authorization (an API key, under
# 100); a body is limited by the application itself (API_MAX_BODY_BYTES, 8 KB by
# default, refused with 413 problem+json from its Content-Length before it is read:
# gunicorn has no body limit of its own).
limit_request_line = _int("GUNICORN_LIMIT_REQUEST_LINE", 4094)
limit_request_fields = _int("GUNICORN_LIMIT_REQUEST_FIELDS", 100)
limit_request_field_size = _int("GUNICORN_LIMIT_REQUEST_FIELD_SIZE", 8190)

proc_name = "vouchers-api"


def child_exit(server, worker):
    """A dead worker's counters stay in PROMETHEUS_MULTIPROC_DIR (summed by /metrics); its
    live gauges, if any, are dropped."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

# gunicorn >= 24 opens a control socket in the user's home by default; two servers on
# one host would fight over it. Opt in with a path of your own.
if os.environ.get("GUNICORN_CONTROL_SOCKET", "").strip():
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"].strip()
else:
    control_socket_disable = True
