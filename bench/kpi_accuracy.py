"""KPI detection quality on the simulator's `default` scenario, through the real rollups and the
monitoring evaluator. Prints ONE JSON line.

    .venv/bin/python bench/kpi_accuracy.py [--chunk-hours 6] [--scenario default]

The scenario's events are ingested in chronological chunks (events_ingest + batch_run, so rollups are
the production ones); after each chunk the evaluator runs with `now` = the chunk's end (closed buckets
only, the streaming path) and the stock check runs. Default watched series of a new tenant; the only
configuration change is Prophet refit weekly for hourly series (instead of daily) to keep the run within
minutes on 2 cores. Figures from simulator.evaluate.evaluate with the real number of evaluated
(series x bucket) cells; labels of kind kpi and stock.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from kpi_live import setup  # noqa: E402 - sets the environment and sys.path first


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--chunk-hours", type=int, default=6)
    parser.add_argument("--hour-refit-days", type=int, default=7)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()

    from simulator.config import load_config
    from simulator.evaluate import evaluate
    from simulator.generator import generate

    started = time.perf_counter()
    scenario = generate(load_config(args.scenario))
    cfg = scenario.config
    tenant = setup("bench-kpi-accuracy", timezone_name=cfg.timezone, currency=cfg.currency,
                   config={"kpi": {"prophet_refit_days": {"hour": args.hour_refit_days, "day": 7, "native": 1}}})
    from ingestion.services import events_ingest
    from ingestion.tasks import batch_run
    from monitoring.models import MonitorState
    from monitoring.services import kpi_evaluate, stock_check
    from scoring.kpi.forecast import quiet_prophet_logging
    from scoring.models import Anomaly

    quiet_prophet_logging()
    events = list(scenario.events)
    events.sort(key=lambda e: e["timestamp"])
    t0 = datetime.fromisoformat(events[0]["timestamp"]).astimezone(UTC)
    chunk = timedelta(hours=args.chunk_hours)
    ingest_s = eval_s = 0.0
    i = 0
    end = t0.replace(minute=0, second=0, microsecond=0) + chunk
    last = datetime.fromisoformat(events[-1]["timestamp"]).astimezone(UTC)
    while end <= last + chunk:
        j = i
        while j < len(events) and datetime.fromisoformat(events[j]["timestamp"]).astimezone(UTC) < end:
            j += 1
        a = time.perf_counter()
        for k in range(i, j, 5000):
            result = events_ingest(tenant=tenant, raw_events=events[k:min(j, k + 5000)], source="api")
            batch_run(result.batch_id)
        b = time.perf_counter()
        kpi_evaluate(tenant=tenant, now=end + timedelta(minutes=3))
        stock_check(tenant=tenant, now=end)
        eval_s += time.perf_counter() - b
        ingest_s += b - a
        i, end = j, end + chunk
    buckets = MonitorState.objects.get().buckets_evaluated
    anomalies = [{"kind": x.kind, "occurred_at": x.occurred_at.isoformat(), "detected_at": x.detected_at.isoformat(),
                  "metric": x.metric, "dimensions": x.dimensions, "entity": x.entity or None, "event_ids": [],
                  "score": x.score, "detectors": x.detectors} for x in Anomaly.objects.filter(kind__in=["kpi", "stock"])]
    labels = [lab for lab in scenario.labels if lab.kind in ("kpi", "stock")]
    result = evaluate(labels, anomalies, kpi_buckets=buckets, delay_basis="occurred_at").to_dict()
    per_type = {t: {k: r[k] for k in ("recall", "delay_median_s") if k in r} for t, r in result["per_type"].items()
                if t in {lab.type for lab in labels}}
    # Stock threshold crossings are alerts the tenant asked for (its own thresholds) but are not labelled
    # incidents; report the KPI detectors' false-alarm rate on their own as well.
    kpi_only = evaluate([lab for lab in labels if lab.kind == "kpi"], [a for a in anomalies if a["kind"] == "kpi"],
                        kpi_buckets=buckets, delay_basis="occurred_at").to_dict()
    stock_counts = dict(Counter(next(iter(a["detectors"]), "") for a in anomalies if a["kind"] == "stock"))
    from _common import emit

    emit("kpi_accuracy", {
        "scenario": args.scenario, "events": len(events), "kpi_buckets_evaluated": buckets,
        "anomalies": len(anomalies), "anomalies_by_metric": dict(Counter(a["metric"] for a in anomalies)),
        "per_type": per_type, "false_alarms_per_1000": result.get("false_alarms_per_1000"),
        "precision": result.get("precision"),
        "kpi_only": {"false_alarms_per_1000": kpi_only.get("false_alarms_per_1000"),
                     "precision": kpi_only.get("precision"), "anomalies": sum(a["kind"] == "kpi" for a in anomalies)},
        "stock_alerts_by_detector": stock_counts, "ingest_seconds": round(ingest_s, 1),
        "evaluate_seconds": round(eval_s, 1), "total_seconds": round(time.perf_counter() - started, 1),
        "hour_prophet_refit_days": args.hour_refit_days,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})


if __name__ == "__main__":
    main()
