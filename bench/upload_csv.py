"""A 1,000,000-row CSV upload: POST /api/v1/uploads (raw text/csv body, streamed), then a Celery worker
(solo pool, one process) ingests it in chunks. Reports rows/s of the worker (upload started_at to
finished_at) and the worker's peak RSS (VmHWM). Prints one JSON line.
Usage: .venv/bin/python bench/upload_csv.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_bench_common import (  # noqa: E402
    PY,
    REDIS_URL,
    ROOT,
    bench_env,
    emit,
    ensure_database,
    free_port,
    fresh_tenant,
    start_web,
    stop,
    wait_http,
)

COLUMNS = "type,timestamp,customer_id,order_id,channel,campaign,product_id,store_id,country,amount,currency"


def write_csv(path: Path, rows: int) -> int:
    channels = ("email", "ads", "seo")
    with open(path, "w") as out:
        out.write(COLUMNS + "\n")
        for i in range(rows):
            kind = "order" if i % 3 == 0 else "click"
            amount = f"{10 + i % 90}.99" if kind == "order" else ""
            out.write(f"{kind},2026-11-{1 + i % 20:02d}T{i % 24:02d}:{i % 60:02d}:{i % 59:02d}Z,c{i % 5003},o{i},"
                      f"{channels[i % 3]},camp{i % 17},p{i % 301},s{i % 7},US,{amount},{'USD' if amount else ''}\n")
    return path.stat().st_size


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    ensure_database()
    tenant = fresh_tenant("bench-upload")
    data_dir = ROOT / ".pulse" / "bench"
    data_dir.mkdir(parents=True, exist_ok=True)
    csv_path = data_dir / f"upload-{args.rows}.csv"
    size = write_csv(csv_path, args.rows)

    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()  # the bench's own Redis db: no stale tasks
    port = free_port()
    server = start_web(port)
    worker = None
    try:
        wait_http(port)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        posted = time.monotonic()
        with open(csv_path, "rb") as body:
            conn.request("POST", "/api/v1/uploads?filename=bench.csv", body=body,
                         headers={"Authorization": f"Api-Key {tenant['api_key']}", "Content-Type": "text/csv",
                                  "Content-Length": str(size)})
            response = conn.getresponse()
            answer = json.loads(response.read())
        post_seconds = time.monotonic() - posted
        assert response.status == 202, answer
        worker = subprocess.Popen([PY, "-m", "celery", "-A", "pulse", "worker", "--pool", "solo", "-l", "WARNING",
                                   "-n", f"bench-upload-{os.getpid()}@%h"], cwd=ROOT, env=bench_env(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 1200
        detail: dict = {}
        while time.monotonic() < deadline:
            conn.request("GET", f"/api/v1/uploads/{answer['id']}?rejected_limit=1",
                         headers={"Authorization": f"Api-Key {tenant['api_key']}"})
            detail = json.loads(conn.getresponse().read())
            if detail["status"] in ("done", "failed"):
                break
            time.sleep(1)
        rss = peak_rss_mb(worker.pid)
    finally:
        if worker is not None:
            stop(worker)
        stop(server)
    started, finished = (datetime.fromisoformat(detail[k].replace("Z", "+00:00")) for k in ("started_at", "finished_at"))
    seconds = (finished - started).total_seconds()
    emit({"bench": "upload_csv", "rows": args.rows, "file_mb": round(size / 2**20, 1), "status": detail["status"],
          "rows_accepted": detail["rows_accepted"], "rows_rejected": detail["rows_rejected"],
          "post_seconds": round(post_seconds, 1), "process_seconds": round(seconds, 1),
          "rows_per_s": round(detail["rows_done"] / seconds), "worker_peak_rss_mb": round(rss, 1),
          "chunk_rows": 5000})


if __name__ == "__main__":
    main()
