"""KPI monitoring benchmarks through the Django evaluation path (database reads included). ONE JSON line.

    .venv/bin/python bench/kpi_live.py [--values 2000] [--prophet-series 20] [--events 20000]

- live: 10,000 minute series (2,000 campaigns x orders, revenue, sessions, conversion_rate, ctr) with
  their 168-minute history in the rollups; time of `monitoring.services.kpi_evaluate` for ONE closed
  minute (state rows, rollup read, matrices, detectors, consensus, incidents, state write);
- prophet: refit of N daily series (365 days of history), seconds per series and extrapolated to 1,000,
  peak RSS growth; fits are independent per series, so W workers take ~1/W of the time;
- rollups: scoring.rollups bucket rows + upsert for N events, milliseconds per 1,000 events.

Uses its own database (PULSE_KPI_BENCH_DB, default pulse_kpi) and Redis db 10; never the test run.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
DB = os.environ.get("PULSE_KPI_BENCH_DB", "pulse_kpi")
os.environ.setdefault("DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{DB}")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/10")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pulse.settings.local")
os.environ.setdefault("PULSE_LOG_LEVEL", "WARNING")


def setup(slug: str, *, timezone_name: str = "UTC", currency: str = "USD", config: dict | None = None):  # type: ignore[no-untyped-def]
    """Create the database and schemas if needed, a fresh tenant, and activate its schema."""
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB]).fetchone():
            conn.execute(f'CREATE DATABASE "{DB}"')
    py = str(ROOT / ".venv" / "bin" / "python")
    for flag in ("--shared", "--tenant"):
        subprocess.run([py, "manage.py", "migrate_schemas", flag, "-v", "0", "--skip-checks"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, env=dict(os.environ))
    import django

    django.setup()
    from django.db import connection

    from tenants.models import Tenant
    from tenants.services import tenant_create

    old = Tenant.objects.filter(slug=slug).first()
    if old is not None:
        old.delete(force_drop=True)
    tenant, _ = tenant_create(slug=slug, name="KPI benchmark", plan="enterprise", timezone_name=timezone_name,
                              currency=currency)
    if config:
        tenant.config = config
        tenant.save(update_fields=["config"])
    connection.set_tenant(tenant)
    return tenant


def bench_live(tenant, n_values: int) -> dict:  # type: ignore[no-untyped-def]
    from django.db import connection

    from monitoring.models import MonitorState, SeriesState, WatchedSeries
    from monitoring.services import kpi_evaluate

    now = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    minutes = 170
    with connection.cursor() as cur:
        # 2,000 campaigns x 170 minutes of Poisson-ish counts, generated in SQL (fast to seed)
        cur.execute("""
            INSERT INTO scoring_kpibucket (granularity, bucket_start, dimension, value, revenue, orders, units,
                sessions, impressions, returns, refund_amount, payments, payments_failed)
            SELECT 'minute', %s - make_interval(mins => m), 'campaign', 'c' || v,
                   o * 40, o, o, s, s * 30, 0, 0, o, 0
            FROM generate_series(1, %s) v, generate_series(1, %s) m,
                 LATERAL (SELECT floor(random() * 6)::int AS o, 20 + floor(random() * 20)::int AS s) x
        """, [now, n_values, minutes])
        # the same hour on the 35 previous days: what the count series' seasonal rate baseline reads
        cur.execute("""
            INSERT INTO scoring_kpibucket (granularity, bucket_start, dimension, value, revenue, orders, units,
                sessions, impressions, returns, refund_amount, payments, payments_failed)
            SELECT 'hour', %s - make_interval(days => d), 'campaign', 'c' || v,
                   o * 40, o, o, s, s * 30, 0, 0, o, 0
            FROM generate_series(1, %s) v, generate_series(1, 35) d,
                 LATERAL (SELECT 150 + floor(random() * 60)::int AS o, 1500 + floor(random() * 600)::int AS s) x
        """, [now.replace(minute=0) - timedelta(hours=1), n_values])
    MonitorState.objects.create(defaults_created=True)
    metrics = ["orders", "revenue", "sessions", "conversion_rate", "ctr"]
    for m in metrics:
        WatchedSeries.objects.create(metric=m, dimension="campaign", granularity="minute")
    last = now - timedelta(minutes=2)  # everything up to the minute before the one that closes is evaluated
    SeriesState.objects.bulk_create([SeriesState(metric=m, dimension="campaign", value=f"c{v}", granularity="minute",
                                                 last_bucket=last) for m in metrics for v in range(1, n_values + 1)])
    series = len(metrics) * n_values
    runs = []
    for _ in range(3):  # the same closed minute re-evaluated: reset the state between runs
        SeriesState.objects.update(last_bucket=last)
        started = time.perf_counter()
        counts = kpi_evaluate(tenant=tenant, now=now + timedelta(seconds=130))
        runs.append(time.perf_counter() - started)
        assert counts["buckets"] == series, counts
    return {"series": series, "seconds_per_closed_minute": round(min(runs), 3), "runs": [round(r, 3) for r in runs],
            "target_seconds": 5}


def bench_prophet(n_series: int) -> dict:
    import numpy as np

    from monitoring.engine import GroupEngine, SeriesSpec
    from scoring.kpi.forecast import quiet_prophet_logging
    from scoring.kpi.series import Cadence

    quiet_prophet_logging()
    rng = np.random.default_rng(0)
    days = 400
    i = np.arange(days)
    level = rng.uniform(20, 2000, (n_series, 1))
    weekly = 1 + 0.2 * np.sin(2 * np.pi * (i % 7) / 7)
    values = rng.poisson(level * weekly * (1 + 0.001 * i)).astype(float)
    specs = [SeriesSpec("orders", "total", f"s{k}", "day", "count", ("seasonal_z", "prophet")) for k in range(n_series)]
    start = 20_000
    engine = GroupEngine(specs, Cadence(86400), start, values, np.arange(days) * 86400, prophet_refit_buckets=7)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    engine._refit_prophet(np.arange(n_series), start + days - 1)
    seconds = time.perf_counter() - started
    fitted = len(engine.prophet_table)
    per = seconds / max(n_series, 1)
    return {"series": n_series, "fitted": fitted, "seconds": round(seconds, 2), "seconds_per_series": round(per, 3),
            "extrapolated_1000_series_seconds_1_worker": round(per * 1000, 1),
            "extrapolated_1000_series_seconds_4_workers": round(per * 1000 / 4, 1),
            "peak_rss_growth_mb": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024, 1),
            "table_json_bytes_per_series": 7 * 3 * 20}


def bench_rollups(tenant, n_events: int) -> dict:  # type: ignore[no-untyped-def]
    import random

    from scoring.rollups import bucket_rows, buckets_upsert, measures_frame

    rng = random.Random(0)
    start = datetime(2026, 5, 4, tzinfo=UTC)
    events = []
    for _ in range(n_events):
        kind = rng.choice(["order", "click", "click", "impression", "payment"])
        events.append({"type": kind, "occurred_at": start + timedelta(seconds=rng.randrange(3600)),
                       "amount": rng.uniform(5, 200) if kind in ("order", "payment") else None, "currency": "USD",
                       "quantity": rng.randrange(1, 4), "status": "succeeded", "channel": rng.choice("abcde"),
                       "campaign": f"c{rng.randrange(50)}", "product_id": f"p{rng.randrange(500)}",
                       "store_id": "s1", "country": rng.choice(["FR", "DE", "US"])})
    batch = 1000
    started = time.perf_counter()
    for i in range(0, n_events, batch):
        part = events[i:i + batch]
        buckets_upsert(bucket_rows(measures_frame(part, {"USD": 1.0}), tz=tenant.timezone,
                                   minute_dimensions=["total", "channel", "campaign"]))
    seconds = time.perf_counter() - started
    return {"events": n_events, "batch": batch, "ms_per_1000_events": round(1000 * seconds / (n_events / 1000), 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--values", type=int, default=2000, help="campaigns (x 5 metrics = series)")
    parser.add_argument("--prophet-series", type=int, default=20)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    tenant = setup("bench-kpi-live")
    live = bench_live(tenant, args.values)
    rollups = bench_rollups(tenant, args.events)
    prophet = bench_prophet(args.prophet_series)
    from _common import emit

    emit("kpi_live", {"live_minute": live, "prophet_refit_daily": prophet, "rollup_update": rollups,
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})


if __name__ == "__main__":
    main()
