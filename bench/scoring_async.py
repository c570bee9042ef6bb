"""Async scoring: (1) events/s of `scoring.pipeline.transactions_consume` in one process, and
(2) accept -> anomaly-row latency with a real Celery worker at a paced ingest rate.

    .venv/bin/python bench/scoring_async.py [--batch 10000 --batches 4] [--rate 5000 --seconds 20] [--workers 1]

(1) Batches of synthetic payments (1 % injected fraud) are stored through `events_ingest`, then
    the consumer runs on each of them inside a transaction, as `ingestion.tasks.batch_run` does:
    timed = enrichment (one Redis round trip) + detectors + rules + consensus + bulk anomaly insert
    + calibration reservoir push; loading the batch from PostgreSQL is reported separately, and so
    are Redis's busy share and script time during the consumer (its bound: see BENCHMARKS.md).
(2) The bench process accepts events with `events_ingest` (the service behind POST /api/v1/events;
    HTTP parsing is not included) at `--rate` events/s in batches of `--per-batch`; one Celery
    worker (solo pool, one process) runs the batch consumers (rollups + scoring) and the alert
    dispatch. Latency of an anomaly = its `detected_at` - the `received_at` of its event; P50/P95/max
    over every anomaly of the run, and the backlog left when the run ends.
Own database (pulse_scoring_bench) and Redis db 8 (PULSE_BENCH_DB / PULSE_BENCH_REDIS_URL).
Prints one JSON line per part.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("PULSE_BENCH_DB", "pulse_scoring_bench")
os.environ.setdefault("PULSE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from ingest_bench_common import (  # noqa: E402
    DATABASE_URL,
    PY,
    REDIS_URL,
    bench_env,
    emit,
    ensure_database,
    fresh_tenant,
    stop,
)

SETTINGS = "pulse.settings.local"  # batch consumers ON (the ingestion bench settings turn them off)


def _django() -> None:
    os.environ.update(DATABASE_URL=DATABASE_URL, REDIS_URL=REDIS_URL, DJANGO_SETTINGS_MODULE=SETTINGS,
                      PULSE_LOG_LEVEL="WARNING")
    import django

    django.setup()


def _events(n: int, seed: int, hours: float, ago_hours: float | None = None) -> list[dict]:
    """n synthetic payments (one customer per 8 payments, 1 % injected fraud) spread over `hours`,
    starting `ago_hours` ago (default: ending now)."""
    from django.utils import timezone

    from scoring.enrich.synthetic import payments

    start = timezone.now() - timedelta(hours=hours if ago_hours is None else ago_hours)
    events = payments(n, seed=seed, fraud_rate=0.01, hours=hours, start=start)
    for e in events:
        e["event_id"] = f"s{seed}-{e['event_id']}"
        e.pop("attributes", None)  # the synthetic label must not travel
    return events


def _fresh_redis(tenant: object) -> None:
    """The re-created tenant must not inherit the Redis state of an earlier run (same schema name)."""
    from pulse.lib.redis import get_redis
    from scoring.enrich import clear_state

    clear_state(get_redis(), tenant.schema_name)  # type: ignore[attr-defined]
    get_redis().delete("celery")


def throughput(args: argparse.Namespace, tenant: dict) -> None:
    from django.db import connection, transaction

    from ingestion.models import EventBatch
    from ingestion.services import events_ingest
    from ingestion.storage import batch_events_load
    from pulse.lib.redis import get_redis
    from scoring.models import Anomaly
    from scoring.pipeline import transactions_consume
    from tenants.models import Tenant

    t = Tenant.objects.get(pk=tenant["pk"])
    connection.set_tenant(t)
    _fresh_redis(t)
    consume, load, n_total = [], [], 0
    redis_cpu, redis_script_us = 0.0, 0
    own_cpu, pg_cpu = 0.0, 0.0

    def redis_counters() -> tuple[float, int]:
        """(Redis process CPU seconds, total microseconds of EVALSHA) so far."""
        info = get_redis().info()
        return (float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
                int(get_redis().info("commandstats").get("cmdstat_evalsha", {}).get("usec", 0)))

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    tick = os.sysconf("SC_CLK_TCK")

    def cpu_counters() -> tuple[float, float]:
        """(CPU seconds of this process, all threads; of its PostgreSQL backend) so far: the
        consumer's cost in CPU, steadier than its wall time when the box's speed moves."""
        own = resource.getrusage(resource.RUSAGE_SELF)
        with open(f"/proc/{backend}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return own.ru_utime + own.ru_stime, (int(fields[11]) + int(fields[12])) / tick

    for i in range(args.batches + 1):  # the first batch warms up (rebuild, model load, rule defaults)
        # Consecutive 48 h slices (a day-long backfill per batch), so each batch reads like real traffic.
        events = _events(args.batch, seed=100 + i, hours=48, ago_hours=48 * (args.batches + 1 - i))
        result = events_ingest(tenant=t, raw_events=events, source="bench")
        batch = EventBatch.objects.get(pk=result.batch_id)
        t0 = time.perf_counter()
        events = batch_events_load(batch.pk)
        cpu0, script0 = redis_counters()
        own0, pg0 = cpu_counters()
        t1 = time.perf_counter()
        with transaction.atomic():
            transactions_consume(batch=batch, events=events)
        t2 = time.perf_counter()
        own1, pg1 = cpu_counters()
        cpu1, script1 = redis_counters()
        if i:
            load.append(t1 - t0)
            consume.append(t2 - t1)
            n_total += len(events)
            redis_cpu += cpu1 - cpu0
            redis_script_us += script1 - script0
            own_cpu += own1 - own0
            pg_cpu += pg1 - pg0
    get_redis().delete("celery")
    emit({"bench": "scoring_async_throughput", "batch_events": args.batch, "batches": args.batches,
          "consume_events_per_s": round(n_total / sum(consume)), "best_batch_events_per_s":
          round(args.batch / min(consume)), "per_batch_events_per_s": [round(args.batch / c) for c in consume],
          "load_from_postgres_events_per_s": round(n_total / sum(load)),
          "anomalies": Anomaly.objects.count(),
          "flagged_share": round(Anomaly.objects.count() / max(1, n_total + args.batch), 4),  # warm-up batch included
          # How busy Redis was while the consumer ran (1.0 = one core, all of it), and its script time
          # per event: near 1.0, the consumer waits for Redis (bench/enrich_redis.py splits the script).
          "redis_busy_share": round(redis_cpu / sum(consume), 2),
          "redis_script_us_per_event": round(redis_script_us / max(1, n_total), 1),
          # CPU per event of the consumer process (all threads), its PostgreSQL backend and Redis.
          "cpu_us_per_event": {"consumer": round(own_cpu / n_total * 1e6, 1), "postgres": round(pg_cpu / n_total * 1e6, 1),
                               "redis": round(redis_cpu / n_total * 1e6, 1)},
          "process": "one (this one)"})


def latency(args: argparse.Namespace, tenant: dict) -> None:
    from django.db import connection

    from ingestion.models import EventBatch
    from ingestion.services import events_ingest
    from pulse.lib.redis import get_redis
    from tenants.models import Tenant

    t = Tenant.objects.get(pk=tenant["pk"])
    connection.set_tenant(t)
    _fresh_redis(t)
    pool_args = ["--pool", "solo"] if args.workers == 1 else ["--pool", "prefork", "--concurrency", str(args.workers)]
    worker = subprocess.Popen([PY, "-m", "celery", "-A", "pulse", "worker", *pool_args, "-l", "WARNING",
                               "-n", f"bench-scoring-{os.getpid()}@%h"], cwd=ROOT,
                              env=bench_env(DJANGO_SETTINGS_MODULE=SETTINGS), start_new_session=True,
                              stdout=subprocess.DEVNULL)
    try:
        time.sleep(6)  # worker start
        warm = events_ingest(tenant=t, raw_events=_events(500, seed=1, hours=6), source="bench")
        deadline = time.monotonic() + 60
        while EventBatch.objects.get(pk=warm.batch_id).status != "done" and time.monotonic() < deadline:
            time.sleep(0.2)
        first_batch = warm.batch_id + 1
        per_batch = args.per_batch
        n_batches = int(args.rate * args.seconds / per_batch)
        pool = _events(per_batch * n_batches, seed=2, hours=48)
        start = time.perf_counter()
        for i in range(n_batches):
            scheduled = start + i * per_batch / args.rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            events_ingest(tenant=t, raw_events=pool[i * per_batch:(i + 1) * per_batch], source="bench")
        accept_seconds = time.perf_counter() - start
        backlog_at_end = EventBatch.objects.filter(pk__gte=first_batch).exclude(status="done").count()
        deadline = time.monotonic() + 300
        while (EventBatch.objects.filter(pk__gte=first_batch).exclude(status="done").exists()
               and time.monotonic() < deadline):
            time.sleep(0.5)
        drain_seconds = time.perf_counter() - start
        with connection.cursor() as cursor:
            cursor.execute("""
                SELECT percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY lat), max(lat), count(*)
                FROM (SELECT extract(epoch FROM a.detected_at - e.received_at) AS lat
                      FROM scoring_anomaly a JOIN events e ON e.event_id = a.event_ids[1]
                      WHERE a.kind = 'transaction' AND e.batch_id >= %s) x""", [first_batch])
            (p50, p95), worst, count = cursor.fetchone()
    finally:
        stop(worker)
        get_redis().delete("celery")
    emit({"bench": "scoring_async_latency", "target_rate_events_per_s": args.rate,
          "achieved_accept_rate": round(per_batch * n_batches / accept_seconds), "per_batch": per_batch,
          "events": per_batch * n_batches, "backlog_batches_when_accept_ended": backlog_at_end,
          "all_done_after_s": round(drain_seconds, 1), "anomalies": count,
          "accept_to_anomaly_p50_s": round(float(p50), 3) if p50 is not None else None,
          "accept_to_anomaly_p95_s": round(float(p95), 3) if p95 is not None else None,
          "accept_to_anomaly_max_s": round(float(worst), 3) if worst is not None else None,
          "worker": "1 celery process (solo pool)" if args.workers == 1 else f"celery prefork, {args.workers} processes"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["throughput", "latency", "both"], default="both")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--rate", type=float, default=5_000)
    parser.add_argument("--per-batch", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=1, help="worker processes for --part latency")
    args = parser.parse_args()
    ensure_database()
    tenant = fresh_tenant("bench-async")
    _django()
    if args.part in ("throughput", "both"):
        throughput(args, tenant)
    if args.part in ("latency", "both"):
        tenant = fresh_tenant("bench-async")
        from django.db import connection

        connection.close()
        latency(args, tenant)


if __name__ == "__main__":
    main()
