"""Batch ingest throughput: accepted and stored events/s through POST /api/v1/events.

Server: two web processes (`pulse.web`, uvicorn; one per core), each client process talking to its own
server. Why: Django's sync views are GIL-bound, so one process can use one core; two processes on two
ports with the clients split between them stand in for a load balancer in front of N processes. Clients share the same 2 cores, so
the figure is conservative.

Side by side, same rows, same 2 processes: a raw psycopg COPY (the ceiling: no HTTP, no validation,
no idempotency) and a naive DRF ModelSerializer endpoint saving each event (bench/drf_baseline.py).

Prints one JSON line. Usage: .venv/bin/python bench/ingest_throughput.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_bench_common import (  # noqa: E402
    DATABASE_URL,
    emit,
    ensure_database,
    events_body,
    free_port,
    fresh_tenant,
    start_web,
    stop,
    wait_http,
)

BATCH = 1000


def _client(port: int, path: str, key: str, body: bytes, seconds: float, out: Any) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
    accepted = requests = errors = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        requests += 1
        if response.status == 200:
            accepted += json.loads(data)["accepted"]
        else:
            errors += 1
    out.put({"accepted": accepted, "requests": requests, "errors": errors})


def _run_clients(ports: list[int], path: str, key: str, body: bytes, seconds: float) -> dict[str, Any]:
    out: mp.Queue = mp.Queue()
    procs = [mp.Process(target=_client, args=(port, path, key, body, seconds, out)) for port in ports]
    started = time.monotonic()
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.monotonic() - started
    total = sum(r["accepted"] for r in results)
    return {"events_per_s": round(total / elapsed), "accepted": total, "requests": sum(r["requests"] for r in results),
            "errors": sum(r["errors"] for r in results), "seconds": round(elapsed, 1)}


def _copy_worker(schema: str, seconds: float, out: Any) -> None:
    import os

    import psycopg

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ingest_bench_settings")
    from datetime import UTC, datetime

    from ingestion.schemas import COPY_COLUMNS, copy_rows, validate_batch

    valid = validate_batch(events_body(BATCH), tenant_tz="UTC", tenant_currency="USD", now=datetime.now(UTC),
                           event_id_factory=lambda i: f"copy-{i}")
    rows = [(0, *row) for row in copy_rows([e for _, e in valid.valid])]
    sql = f"COPY events (batch_id, {', '.join(COPY_COLUMNS)}) FROM STDIN"
    done = 0
    deadline = time.monotonic() + seconds
    with psycopg.connect(DATABASE_URL.replace("postgres://", "postgresql://")) as conn:
        conn.execute(f"SET search_path TO {schema}, public")
        conn.commit()
        while time.monotonic() < deadline:
            with conn.cursor() as cur, cur.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)
            conn.commit()  # one transaction per 1,000 rows, like one API request
            done += len(rows)
    out.put(done)


def _copy_ceiling(schema: str, seconds: float) -> dict[str, Any]:
    out: mp.Queue = mp.Queue()
    procs = [mp.Process(target=_copy_worker, args=(schema, seconds, out)) for _ in range(2)]
    started = time.monotonic()
    for p in procs:
        p.start()
    total = sum(out.get(timeout=seconds + 120) for _ in procs)
    for p in procs:
        p.join()
    elapsed = time.monotonic() - started
    return {"events_per_s": round(total / elapsed), "rows": total, "seconds": round(elapsed, 1)}


def _stored(schema: str) -> int:
    import psycopg

    with psycopg.connect(DATABASE_URL.replace("postgres://", "postgresql://")) as conn:
        return conn.execute(f"SELECT count(*) FROM {schema}.events WHERE batch_id > 0").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--baseline-seconds", type=float, default=10.0)
    args = parser.parse_args()

    ensure_database()
    tenant = fresh_tenant("bench-ingest")
    body = json.dumps(events_body(BATCH)).encode()
    ports = [free_port(), free_port()]
    servers = [start_web(port) for port in ports]
    try:
        for port in ports:
            wait_http(port)
        _run_clients(ports, "/api/v1/events", tenant["api_key"], body, 2)  # warm-up (partitions, caches)
        before = _stored(tenant["schema"])
        api = _run_clients(ports, "/api/v1/events", tenant["api_key"], body, args.seconds)
        api["stored"] = _stored(tenant["schema"]) - before
        naive = _run_clients(ports, "/bench/drf-events", tenant["api_key"], body, args.baseline_seconds)
    finally:
        for server in servers:
            stop(server)
    ceiling = _copy_ceiling(tenant["schema"], args.baseline_seconds)
    emit({"bench": "ingest_throughput", "batch": BATCH, "clients": 2, "servers": "2x uvicorn",
          "api": api, "copy_ceiling": ceiling, "drf_naive": naive,
          "api_vs_copy": round(api["events_per_s"] / max(ceiling["events_per_s"], 1), 3),
          "api_vs_drf_naive": round(api["events_per_s"] / max(naive["events_per_s"], 1), 1)})


if __name__ == "__main__":
    main()
