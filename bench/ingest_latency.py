"""Single-event latency: POST /api/v1/events with one event at a fixed 200 requests/s (open loop).

Requests are sent on a fixed schedule whatever the answers do, and latency is measured from the
scheduled send time, so a slow answer also delays (and is charged to) the requests queued behind it
(no coordinated omission). Two web processes (uvicorn), requests alternate between them.
Prints one JSON line. Usage: .venv/bin/python bench/ingest_latency.py [--rate 200 --seconds 15]
"""

from __future__ import annotations

import argparse
import http.client
import json
import queue
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_bench_common import (  # noqa: E402
    emit,
    ensure_database,
    events_body,
    free_port,
    fresh_tenant,
    start_web,
    stop,
    wait_http,
)


def _worker(port_of: list[int], key: str, body: bytes, jobs: queue.Queue, results: list[tuple[float, int]]) -> None:
    conns: dict[int, http.client.HTTPConnection] = {}
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
    while True:
        job = jobs.get()
        if job is None:
            return
        scheduled, port = job
        conn = conns.get(port) or conns.setdefault(port, http.client.HTTPConnection("127.0.0.1", port, timeout=30))
        try:
            conn.request("POST", "/api/v1/events", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            status = response.status
        except OSError:
            conns.pop(port, None)
            status = 0
        results.append((time.perf_counter() - scheduled, status))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    ensure_database()
    tenant = fresh_tenant("bench-latency")
    body = json.dumps(events_body(1)[0]).encode()
    ports = [free_port(), free_port()]
    servers = [start_web(port) for port in ports]
    try:
        for port in ports:
            wait_http(port)
        jobs: queue.Queue = queue.Queue()
        results: list[tuple[float, int]] = []
        threads = [threading.Thread(target=_worker, args=(ports, tenant["api_key"], body, jobs, results), daemon=True)
                   for _ in range(32)]
        for t in threads:
            t.start()
        warm = time.perf_counter()
        for i in range(100):  # warm-up: connections, partitions, caches
            jobs.put((warm, ports[i % 2]))
        while len(results) < 100:
            time.sleep(0.05)
        results.clear()
        n = int(args.rate * args.seconds)
        start = time.perf_counter() + 0.1
        for i in range(n):
            scheduled = start + i / args.rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            jobs.put((scheduled, ports[i % 2]))
        deadline = time.monotonic() + 60
        while len(results) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in threads:
            jobs.put(None)
    finally:
        for server in servers:
            stop(server)
    latencies = sorted(r[0] * 1000 for r in results)
    ok = sum(1 for r in results if r[1] == 200)

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))], 2)

    emit({"bench": "ingest_latency", "rate_per_s": args.rate, "requests": len(results), "ok": ok,
          "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "max_ms": round(latencies[-1], 2),
          "servers": "2x uvicorn"})


if __name__ == "__main__":
    main()
