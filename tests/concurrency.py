"""Run a callable from many threads at once, each with its own database connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.db import connections


def run_concurrently(fn: Callable[[int], object], *, tasks: int, workers: int) -> list:
    """Call fn(i) for i in range(tasks) from `workers` threads released together.

    Returns the results in task order. Every thread closes its connections, so the
    test database can be dropped afterwards.
    """
    start = threading.Barrier(min(workers, tasks))

    def call(i: int):
        try:
            if i < workers:
                start.wait(timeout=30)
            return fn(i)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(call, range(tasks)))
