"""Fraud-check latency: POST /api/v1/fraud-check with one payment at fixed rates (open loop).

    .venv/bin/python bench/fraud_check.py [--rates 200,500] [--seconds 15]
    .venv/bin/python bench/fraud_check.py --sequential 1000

`--sequential N`: one web process, N checks one after the other over one connection (no queueing):
server CPU per check split into user and system time, time per round trip, and the same for a
trivial authenticated read (`GET /api/v1/anomalies?limit=1`): the web stack's floor.

Requests leave on a fixed schedule whatever the answers do and client latency is measured from the
scheduled send time (no coordinated omission). Server-side time comes from the `Server-Timing`
header of each answer: `app` = the view, authentication included (validation, storing the event,
enrichment, scoring, recording an anomaly when flagged); `score` = enrichment + scoring alone.
`server_cpu_ms_per_request`: CPU time of the two server processes per request (PostgreSQL and Redis
not included): the capacity figure (requests/s per core ~ 1000 / it, before the database's share);
`client_cpu_ms_per_request`: the load generator's own CPU (it shares the box's cores).
Two web processes (`pulse.web`, uvicorn; one per core), a fresh tenant in its own database (pulse_scoring_bench) and
Redis db 8 (override with PULSE_BENCH_DB / PULSE_BENCH_REDIS_URL). Prints one JSON line per rate.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import random
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("PULSE_BENCH_DB", "pulse_scoring_bench")
os.environ.setdefault("PULSE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_bench_common import (  # noqa: E402
    REDIS_URL,
    emit,
    ensure_database,
    free_port,
    fresh_tenant,
    start_web,
    stop,
    wait_http,
)


def _payments(n: int, seed: int) -> list[bytes]:
    """Payments of a pool of 3,000 customers (so velocity and history features have something to
    count), timestamps = now at send time (left to the server)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        c = rng.randrange(3000)
        out.append(json.dumps({
            "type": "payment", "event_id": f"fc-{seed}-{i}", "customer_id": f"cust-{c}", "amount": f"{rng.lognormvariate(3.7, 0.8):.2f}",
            "currency": "USD", "status": "succeeded" if rng.random() > 0.05 else "failed", "country": "US",
            "ip": f"10.{c % 250}.{rng.randrange(4)}.{c % 200}", "device_id": f"dev-{c}", "payment_method": "card",
            "attributes": {"card_fingerprint": f"card-{c}-{rng.randrange(2)}"}, "channel": "web", "store_id": "s1",
        }).encode())
    return out


def _server_timing(header: str | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in (header or "").split(","):
        name, _, dur = part.strip().partition(";dur=")
        if dur:
            out[name] = float(dur)
    return out


def _worker(key: str, jobs: queue.Queue, results: list[tuple[float, int, dict[str, float], str]]) -> None:
    conns: dict[int, http.client.HTTPConnection] = {}
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
    while True:
        job = jobs.get()
        if job is None:
            return
        scheduled, port, body = job
        conn = conns.get(port) or conns.setdefault(port, http.client.HTTPConnection("127.0.0.1", port, timeout=30))
        timing: dict[str, float] = {}
        decision = ""
        try:
            conn.request("POST", "/api/v1/fraud-check", body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            status = response.status
            timing = _server_timing(response.getheader("Server-Timing"))
            if status == 200:
                decision = json.loads(payload)["decision"]
        except OSError:
            conns.pop(port, None)
            status = 0
        results.append((time.perf_counter() - scheduled, status, timing, decision))


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the server processes so far (Linux /proc; 0 elsewhere)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(p / 100 * len(values)))], 2) if values else float("nan")


def _run(rate: float, seconds: float, ports: list[int], key: str, bodies: list[bytes],
         pids: list[int] | None = None) -> dict:
    cpu_before, client_before = _cpu_seconds(pids or []), time.process_time()
    jobs: queue.Queue = queue.Queue()
    results: list[tuple[float, int, dict[str, float], str]] = []
    threads = [threading.Thread(target=_worker, args=(key, jobs, results), daemon=True) for _ in range(48)]
    for t in threads:
        t.start()
    n = int(rate * seconds)
    start = time.perf_counter() + 0.1
    for i in range(n):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        jobs.put((scheduled, ports[i % len(ports)], bodies[i % len(bodies)]))
    deadline = time.monotonic() + 120
    while len(results) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    for _ in threads:
        jobs.put(None)
    client_ms = [r[0] * 1000 for r in results]
    app = [r[2]["app"] for r in results if "app" in r[2]]
    score = [r[2]["score"] for r in results if "score" in r[2]]
    decisions: dict[str, int] = {}
    for r in results:
        decisions[r[3] or f"status {r[1]}"] = decisions.get(r[3] or f"status {r[1]}", 0) + 1
    cpu, client_cpu = _cpu_seconds(pids or []) - cpu_before, time.process_time() - client_before
    return {"rate_per_s": rate, "requests": len(results), "ok": sum(1 for r in results if r[1] == 200),
            "server_cpu_ms_per_request": round(1000 * cpu / max(1, len(results)), 2),
            "client_cpu_ms_per_request": round(1000 * client_cpu / max(1, len(results)), 2),
            "client_p50_ms": _pct(client_ms, 50), "client_p99_ms": _pct(client_ms, 99),
            "server_app_p50_ms": _pct(app, 50), "server_app_p99_ms": _pct(app, 99),
            "server_score_p50_ms": _pct(score, 50), "server_score_p99_ms": _pct(score, 99),
            "decisions": decisions}


def _cpu_split(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / os.sysconf("SC_CLK_TCK"), int(fields[12]) / os.sysconf("SC_CLK_TCK")


def _sequential(n: int, key: str) -> None:
    port = free_port()
    server = start_web(port)
    try:
        wait_http(port)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}

        def measure(label: str, method: str, path: str, bodies: list[bytes | None]) -> None:
            for body in bodies[:300]:  # warm-up: model load, pools, caches
                conn.request(method, path, body=body, headers=headers)
                conn.getresponse().read()
            (user0, sys0), started = _cpu_split(server.pid), time.perf_counter()
            for body in bodies[300:]:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                assert response.status == 200, response.status
            (user1, sys1), count = _cpu_split(server.pid), len(bodies) - 300
            emit({"bench": "fraud_check_sequential", "request": label, "requests": count,
                  "server_user_ms_per_request": round(1000 * (user1 - user0) / count, 2),
                  "server_system_ms_per_request": round(1000 * (sys1 - sys0) / count, 2),
                  "round_trip_ms": round(1000 * (time.perf_counter() - started) / count, 2), "servers": "1x uvicorn"})

        measure("POST /api/v1/fraud-check", "POST", "/api/v1/fraud-check", _payments(n + 300, seed=11))  # type: ignore[arg-type]
        measure("GET /api/v1/anomalies?limit=1", "GET", "/api/v1/anomalies?limit=1", [None] * (n + 300))
    finally:
        stop(server)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="200,500")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--sequential", type=int, default=0, help="N checks one at a time instead of the rates")
    args = parser.parse_args()
    ensure_database()
    tenant = fresh_tenant("bench-fraud")
    if args.sequential:
        _sequential(args.sequential, tenant["api_key"])
        return
    ports = [free_port(), free_port()]
    # The benchmark settings turn batch consumers off; the fraud-check needs none (it scores inline).
    servers = [start_web(port) for port in ports]
    try:
        for port in ports:
            wait_http(port)
        warm = _payments(400, seed=0)
        _run(50, len(warm) / 50, ports, tenant["api_key"], warm)  # rebuild, model load, rule defaults, pools
        for i, rate in enumerate(float(r) for r in args.rates.split(",")):
            bodies = _payments(int(rate * args.seconds), seed=i + 1)
            emit({"bench": "fraud_check", **_run(rate, args.seconds, ports, tenant["api_key"], bodies,
                                                 [server.pid for server in servers]),
                  "servers": "2x uvicorn", "redis": REDIS_URL})
    finally:
        for server in servers:
            stop(server)
        import redis

        redis.Redis.from_url(REDIS_URL).delete("celery")  # batch hand-offs nobody consumed


if __name__ == "__main__":
    main()
