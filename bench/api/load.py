"""Load generation: wrk runs (bench/wrk/*.lua) and the sequential latency client."""

from __future__ import annotations

import http.client
import json
import math
import os
import queue
import signal
import subprocess
import threading
import time

from bench.api.common import WRK_DIR
from bench.api.server import Server


class Load(Server):
    """Load generation against the running gunicorn: wrk with a Lua script, and a
    sequential one-connection client."""

    # --- wrk --------------------------------------------------------------------------

    def wrk(self, script: str, *, connections: int, duration: int, script_args: list[str],
            quota_total: int = 0, database: str | None = None) -> dict:
        """Run wrk with a Lua script; its summary (see bench/wrk/common.lua).

        With quota_total, each thread sends exactly its share and wrk is ended (SIGINT)
        as soon as every thread has all its responses; `duration` is then only a bound.
        """
        threads = min(self.args.wrk_threads, connections)
        quota = 0
        if quota_total:
            if quota_total % threads:
                raise ValueError("the request count must divide evenly among wrk threads")
            quota = quota_total // threads
        cmd = [
            "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s",
            "--timeout", "30s", "-s", str(WRK_DIR / script), f"http://127.0.0.1:{self.args.port}",
            "--", str(threads), str(quota), *script_args,
        ]
        env = {**os.environ, "BENCH_WRK_DIR": str(WRK_DIR)}
        self.settle()
        cpu_before = self.cpu_snapshot(database) if database else None
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            for line in proc.stdout:  # type: ignore[union-attr]
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        summary = None
        sent_threads = done_threads = 0
        deadline = time.monotonic() + duration + 60
        interrupted = False
        try:
            while time.monotonic() < deadline:
                try:
                    line = lines.get(timeout=0.5)
                except queue.Empty:
                    continue
                if line is None:
                    break
                if line.startswith("WRKSENT"):
                    sent_threads += 1
                    if sent_threads == threads:  # all sent: wait for answers, bounded
                        deadline = min(deadline, time.monotonic() + 40)
                elif line.startswith("WRKDONE"):
                    done_threads += 1
                elif line.startswith("WRKJSON "):
                    summary = json.loads(line[len("WRKJSON "):])
                if quota and not interrupted and done_threads == threads:
                    proc.send_signal(signal.SIGINT)
                    interrupted = True
            if summary is None and proc.poll() is None and quota and not interrupted:
                proc.send_signal(signal.SIGINT)  # stragglers never answered: end it, keep the summary
                while (line := lines.get(timeout=30)) is not None:
                    if line.startswith("WRKJSON "):
                        summary = json.loads(line[len("WRKJSON "):])
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if summary is None:
            raise RuntimeError(f"wrk gave no summary: {proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        if cpu_before is not None:
            summary["cpu_ms_per_request"] = self.cpu_per_request(
                cpu_before, self.cpu_snapshot(database), int(summary["received"])
            )
        summary["connections"] = connections
        summary["threads"] = threads
        if quota:
            summary["rps"] = summary["received"] / summary["wall_s"] if summary["wall_s"] else 0.0
        else:
            summary["rps"] = summary["wrk_requests"] / summary["wrk_duration_s"]
        summary["non_2xx_or_409"] = sum(
            n for status, n in summary["statuses"].items() if not (status.startswith("2") or status == "409")
        )
        summary["5xx"] = sum(n for status, n in summary["statuses"].items() if status.startswith("5"))
        socket_errors = sum(summary["errors"][k] for k in ("connect", "read", "write", "timeout"))
        summary["socket_errors"] = socket_errors
        return summary

    # --- sequential client ------------------------------------------------------------

    def sequential(self, requests: list[tuple[str, str, dict, dict]]) -> dict:
        """Send requests one after another on one keep-alive connection; latency figures."""
        conn = http.client.HTTPConnection("127.0.0.1", self.args.port, timeout=30)
        latencies: list[float] = []
        statuses: dict[str, int] = {}
        try:
            for method, path, body, headers in requests:
                payload = json.dumps(body)
                started = time.perf_counter()
                conn.request(method, path, payload, {"Content-Type": "application/json", **headers})
                response = conn.getresponse()
                response.read()
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
        finally:
            conn.close()
        return {"n": len(latencies), "p50_ms": percentile(latencies, 50),
                "p90_ms": percentile(latencies, 90), "p99_ms": percentile(latencies, 99),
                "statuses": statuses}


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(math.ceil(pct / 100 * len(ordered)) - 1, 0)
    return ordered[rank]


def fmt_summary(s: dict) -> str:
    lat = s["latency_ms"]
    cpu = s.get("cpu_ms_per_request") or {}
    cpu_text = (f"  cpu/req gunicorn {cpu['gunicorn']:.2f} ms, postgres {cpu['postgres']:.2f} ms, "
                f"redis {cpu['redis']:.2f} ms" if cpu else "")
    return (f"{s['rps']:7.1f} req/s  p50 {lat['p50']:7.2f} ms  p99 {lat['p99']:7.2f} ms  "
            f"non-2xx/409 {s['non_2xx_or_409']:.0f}  socket errors {s['socket_errors']:.0f}{cpu_text}")
