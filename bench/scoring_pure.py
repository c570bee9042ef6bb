"""Benchmark of the pure scoring path (no Django): enrichment (Redis) -> detectors -> calibration
-> rules -> consensus, for one batch of 10,000 synthetic payments and for single events.

    .venv/bin/python bench/scoring_pure.py [--redis redis://127.0.0.1:6379/9] [--n 10000] [--single 2000]

Uses (and flushes) the given Redis database. Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scoring.consensus import ScoringEngine  # noqa: E402
from scoring.detectors.training import train_global_model  # noqa: E402
from scoring.enrich import Enricher  # noqa: E402
from scoring.enrich.synthetic import payments  # noqa: E402
from scoring.rules import RuleSet, default_rules  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/9")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--single", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=3, help="batch runs; the best is reported")
    args = ap.parse_args()
    client = redis.Redis.from_url(args.redis)
    client.flushdb()

    train = Enricher(client, "bench-train").enrich(payments(5_000, seed=1, hours=48))
    model = train_global_model(train, seed=0)
    engine = ScoringEngine(model.detectors, model.calibrators, RuleSet(default_rules()))
    events = payments(args.n, seed=2, fraud_rate=0.01, hours=24)

    stages: dict[str, list[float]] = {"enrich": [], "detectors_consensus": [], "total": []}
    for _ in range(args.repeat):
        client.flushdb()
        en = Enricher(client, "bench")
        t0 = time.perf_counter()
        frame = en.enrich(events)
        t1 = time.perf_counter()
        result = engine.score(frame)
        for i in result.flagged():  # reasons are part of the path for the rows that become anomalies
            result.reasons(int(i))
        t2 = time.perf_counter()
        stages["enrich"].append(t1 - t0)
        stages["detectors_consensus"].append(t2 - t1)
        stages["total"].append(t2 - t0)
    best = {k: min(v) for k, v in stages.items()}

    # Single events: a warm state (the batch above), then fraud-check style calls one by one.
    singles = payments(args.single, seed=3, fraud_rate=0.01, hours=24)
    for e in singles:
        e["event_id"] = "single-" + e["event_id"]
    en = Enricher(client, "bench")
    lat, lat_enrich = [], []
    for e in singles:
        t0 = time.perf_counter()
        row = en.enrich_one(e)
        t1 = time.perf_counter()
        engine.score_row(row)
        t2 = time.perf_counter()
        lat.append(t2 - t0)
        lat_enrich.append(t1 - t0)
    lat_ms = np.array(lat) * 1e3
    lat_en_ms = np.array(lat_enrich) * 1e3
    client.flushdb()
    print(json.dumps({
        "bench": "scoring_pure",
        "batch_events": args.n,
        "batch_enrich_s": round(best["enrich"], 4),
        "batch_detectors_rules_consensus_s": round(best["detectors_consensus"], 4),
        "batch_total_s": round(best["total"], 4),
        "enrich_events_per_s": round(args.n / best["enrich"]),
        "total_events_per_s": round(args.n / best["total"]),
        "flagged_share": round(float(len(result.flagged()) / args.n), 4),
        "single_calls": args.single,
        "single_p50_ms": round(float(np.percentile(lat_ms, 50)), 3),
        "single_p99_ms": round(float(np.percentile(lat_ms, 99)), 3),
        "single_enrich_p50_ms": round(float(np.percentile(lat_en_ms, 50)), 3),
        "single_enrich_p99_ms": round(float(np.percentile(lat_en_ms, 99)), 3),
        "python": platform.python_version(),
        "redis": client.info("server").get("redis_version"),
    }))


if __name__ == "__main__":
    main()
