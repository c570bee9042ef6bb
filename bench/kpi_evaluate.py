"""KPI detector benchmarks. Prints ONE JSON line.

Default (speed):
    .venv/bin/python bench/kpi_evaluate.py [--series 10000] [--prophet-fits 20]
  - evaluate_latest for one closed hourly bucket of N synthetic series with 4 weeks of history
    (seasonal robust z with per-series season detection + cached-forecast Prophet lookup + consensus),
  - Prophet fits of daily series (1 year of history, 30-day horizon), extrapolated to 1,000 series,
  - peak memory (ru_maxrss).

Quality:
    .venv/bin/python bench/kpi_evaluate.py --quality 40 [--quiet-series 20]
  - backfills synthetic hourly series (random level, daily shape, weekday profile, trend, noise) with one
    injected incident each (spike, drop, level shift, outage) in the last 7 days, through the default
    pipeline (seasonal z + Prophet + Isolation Forest, pairwise consensus, no noise filters), and
    reports recall per incident type, detection delay, and false alarms per 1,000 evaluated buckets
    (incidents outside the labelled windows), plus false alarms on incident-free low-count series.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scoring.kpi.base import evaluate_latest  # noqa: E402
from scoring.kpi.consensus import combine  # noqa: E402
from scoring.kpi.forecast import ProphetResidual, fit_forecast  # noqa: E402
from scoring.kpi.seasonal import SeasonalRobustZ  # noqa: E402
from scoring.kpi.series import Cadence  # noqa: E402


def synthetic_matrix(n_series: int, n_buckets: int, seed: int = 0) -> np.ndarray:
    """Vectorised hourly counts: per-series level, daily shape and weekday profile, Poisson noise."""
    rng = np.random.default_rng(seed)
    i = np.arange(n_buckets)[None, :]
    level = np.exp(rng.uniform(np.log(0.5), np.log(2000), (n_series, 1)))
    amp = rng.uniform(0.2, 0.8, (n_series, 1))
    phase = rng.uniform(0, 2 * np.pi, (n_series, 1))
    dow = np.where(rng.random((n_series, 1)) < 0.6, rng.uniform(0.7, 1.3, (n_series, 7)), 1.0)
    week = np.take_along_axis(dow, np.broadcast_to((i // 24) % 7, (n_series, n_buckets)), axis=1)
    mu = level * np.clip(1 + amp * np.sin(2 * np.pi * (i % 24) / 24 + phase), 0.05, None) * week
    return rng.poisson(mu).astype(float)


def bench_latest(n_series: int) -> dict[str, float]:
    m = synthetic_matrix(n_series, 28 * 24 + 1)
    m[:: 100, -1] *= 3  # 1 % of series spike in the closed bucket
    det = SeasonalRobustZ(kind="count")
    prophet = ProphetResidual(kind="count")
    # cached forecasts for the closed bucket (in production: one row per series read from the cache)
    yhat = np.median(m[:, -169:-1:168], axis=1) if m.shape[1] > 169 else m[:, -2]
    lo, hi = yhat - 4 * np.sqrt(yhat + 1), yhat + 4 * np.sqrt(yhat + 1)
    evaluate_latest(m[:50], det, Cadence(3600))  # warm-up
    t0 = time.perf_counter()
    z = evaluate_latest(m, det, Cadence(3600))
    t1 = time.perf_counter()
    p = prophet.score_batch(m[:, -1], yhat, lo, hi)
    result = combine({"seasonal_z": z, "prophet": p}, kind="count")
    t2 = time.perf_counter()
    return {"series": n_series, "history_buckets": m.shape[1] - 1, "seasonal_z_s": round(t1 - t0, 3),
            "prophet_lookup_and_consensus_s": round(t2 - t1, 3), "evaluate_latest_total_s": round(t2 - t0, 3),
            "confirmed": int(result.confirmed.sum()),
            "periods": {str(k): int(v) for k, v in zip(*np.unique(z.extra["period"].astype(int),
                                                                   return_counts=True), strict=True)}}


def bench_prophet(n_fits: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    times = np.datetime64("2023-01-01", "s") + np.arange(365) * np.timedelta64(1, "D")
    durations = []
    for k in range(n_fits):
        level = rng.uniform(50, 5000)
        v = level * np.where(np.arange(365) % 7 >= 5, rng.uniform(0.6, 1.2), 1.0) * np.exp(rng.normal(0, 0.1, 365))
        t0 = time.perf_counter()
        fit_forecast(times, v, horizon=30, cadence=Cadence(86400), kind="money", seed=k)
        durations.append(time.perf_counter() - t0)
    per = float(np.mean(durations[1:] if len(durations) > 1 else durations))
    return {"prophet_daily_fits": n_fits, "prophet_fit_mean_s": round(per, 3),
            "prophet_fit_p95_s": round(float(np.quantile(durations, 0.95)), 3),
            "prophet_1000_series_one_core_s": round(per * 1000, 1)}


def quality(n_series: int, quiet_series: int) -> dict[str, object]:
    from scoring.kpi.pipeline import KpiConfig, detect
    from scoring.kpi.synthetic import scenario

    eval_days, per_day = 7, 24
    hits: dict[str, list[int]] = {}
    delays: dict[str, list[int]] = {}
    false_alarms, evaluated = 0, 0
    for seed in range(n_series):
        t, v, labels = scenario(seed, days=28, eval_days=eval_days)
        n = t.size
        start = n - eval_days * per_day
        _, incidents = detect(t, v, KpiConfig(kind="count"), start=t[start])
        evaluated += n - start
        inc = labels[0]
        end = n if inc.kind == "level_shift" else inc.start + inc.length
        # a detection counts if it starts inside the incident (level shift: within its first day)
        window_end = min(n, inc.start + per_day) if inc.kind == "level_shift" else end + 2
        found = [i for i in incidents if inc.start <= i.start_index < window_end]
        hits.setdefault(inc.kind, []).append(int(bool(found)))
        if found:
            delays.setdefault(inc.kind, []).append(found[0].detected_index - inc.start)
        false_alarms += sum(1 for i in incidents if i.start_index >= start and not (inc.start <= i.start_index < max(window_end, end)))
    quiet_fa, quiet_eval = 0, 0
    for seed in range(quiet_series):
        level = float(np.exp(np.random.default_rng(10_000 + seed).uniform(np.log(0.3), np.log(20))))
        t, v, _ = scenario(10_000 + seed, days=28, eval_days=eval_days, incident=False, level=level)
        start = t.size - eval_days * per_day
        _, incidents = detect(t, v, KpiConfig(kind="count"), start=t[start])
        quiet_eval += t.size - start
        quiet_fa += sum(1 for i in incidents if i.start_index >= start)
    recall = {k: round(float(np.mean(h)), 3) for k, h in sorted(hits.items())}
    all_hits = [x for h in hits.values() for x in h]
    return {"series": n_series, "recall": recall, "n_by_type": {k: len(h) for k, h in sorted(hits.items())},
            "recall_overall": round(float(np.mean(all_hits)), 3),
            "median_delay_buckets": {k: float(np.median(d)) for k, d in sorted(delays.items())},
            "false_alarms_per_1000_buckets": round(1000 * false_alarms / max(evaluated, 1), 2),
            "evaluated_buckets": evaluated,
            "quiet_low_count_series": quiet_series,
            "quiet_false_alarms_per_1000_buckets": round(1000 * quiet_fa / max(quiet_eval, 1), 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--prophet-fits", type=int, default=20)
    ap.add_argument("--quality", type=int, default=0, help="run the quality benchmark on N series instead")
    ap.add_argument("--quiet-series", type=int, default=20)
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.quality:
        out: dict[str, object] = {"bench": "kpi_quality", **quality(args.quality, args.quiet_series)}
    else:
        out = {"bench": "kpi_evaluate", **bench_latest(args.series), **bench_prophet(args.prophet_fits)}
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
