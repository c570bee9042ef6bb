"""One call from a KPI series to incidents: default detectors, consensus, noise control.

This is what a backfill (and the quality benchmark) runs; the live path runs the same detectors per
closed bucket with `evaluate_latest` and cached fits, and applies the same consensus and noise control.
Defaults per series: seasonal robust z (refit daily: the season choice), Prophet (refit daily for
sub-daily series, weekly for daily ones), Isolation Forest (same schedule), pairwise consensus.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scoring.kpi.base import KpiDetector, KpiScores, evaluate_series
from scoring.kpi.consensus import ConsensusConfig, ConsensusResult, combine
from scoring.kpi.forecast import ProphetResidual
from scoring.kpi.iforest import IsolationForestKpi
from scoring.kpi.noise import Incident, NoiseConfig, apply_noise_control
from scoring.kpi.seasonal import SeasonalRobustZ
from scoring.kpi.series import DAY, Cadence, as_seconds, infer_cadence


@dataclass(frozen=True)
class KpiConfig:
    """Per tenant x metric settings (the Django side stores these; defaults are sensible for retail KPIs)."""

    kind: str = "gauge"  # count, money, gauge
    detectors: tuple[str, ...] = ("seasonal_z", "prophet", "iforest")
    z_threshold: float = 4.0
    interval_width: float = 0.99
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)


def refit_every(cadence: Cadence) -> int:
    """Fit schedule in seconds: daily for sub-daily series, weekly for daily ones."""
    return DAY if cadence.seconds < DAY else 7 * DAY


def build_detectors(config: KpiConfig, cadence: Cadence) -> list[KpiDetector]:
    period = refit_every(cadence)
    out: list[KpiDetector] = []
    for name in config.detectors:
        if name == "seasonal_z":
            out.append(SeasonalRobustZ(kind=config.kind, z_threshold=config.z_threshold, cadence=cadence))
        elif name == "prophet":
            out.append(ProphetResidual(kind=config.kind, interval_width=config.interval_width, cadence=cadence,
                                       horizon_buckets=period // cadence.seconds + 1,
                                       min_history=max(14, 2 * cadence.per_day)))
        elif name == "iforest":
            out.append(IsolationForestKpi(cadence=cadence, kind=config.kind))
        else:
            raise ValueError(f"unknown KPI detector {name!r}")
    return out


def detect(times: object, values: object, config: KpiConfig | None = None, *, start: object | None = None,
           cadence: Cadence | None = None) -> tuple[ConsensusResult, list[Incident]]:
    """Backfill a series in timestamp order (no look-ahead) and return per-point consensus + incidents."""
    cfg = config or KpiConfig()
    t = as_seconds(times)
    order = np.argsort(t, kind="stable")
    t = t[order]
    v = np.asarray(values, dtype=float)[order]
    cad = cadence or infer_cadence(t)
    scores: dict[str, KpiScores] = {}
    for det in build_detectors(cfg, cad):
        # the season choice is cheap: refit it daily whatever the cadence, models on their schedule
        every = DAY if det.name == "seasonal_z" else refit_every(cad)
        scores[det.name] = evaluate_series(t.astype("datetime64[s]"), v, det, refit_every=every, start=start)
    result = combine(scores, cfg.consensus, kind=cfg.kind)
    dt = t.astype("datetime64[s]")
    return result, apply_noise_control(dt, result.confirmed, result.direction, result.relative_change, cfg.noise)
