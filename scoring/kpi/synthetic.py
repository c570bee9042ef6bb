"""Synthetic KPI series with labelled incidents, for tests and benchmarks (never for tuning constants).

Every series draws its own level, daily shape (two harmonics with random phase), day-of-week profile,
trend and noise model, so a detector that only works for one shape fails visibly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INCIDENT_TYPES = ("spike", "drop", "level_shift", "outage")


@dataclass(frozen=True)
class Incident:
    kind: str
    start: int  # index of the first affected bucket
    length: int  # affected buckets (level shift: to the end)
    factor: float


def baseline(n: int, per_day: int, rng: np.random.Generator, level: float | None = None,
             weekly: bool | None = None) -> np.ndarray:
    """Expected value per bucket: level x daily shape x weekday profile x gentle trend."""
    level = float(level if level is not None else np.exp(rng.uniform(np.log(20), np.log(2000))))
    i = np.arange(n)
    shape = np.ones(n)
    if per_day > 1:
        h = (i % per_day) / per_day
        a1, a2 = rng.uniform(0.3, 0.8), rng.uniform(0.0, 0.3)
        p1, p2 = rng.uniform(0, 2 * np.pi, 2)
        shape = 1 + a1 * np.sin(2 * np.pi * h + p1) + a2 * np.sin(4 * np.pi * h + p2)
        shape = np.clip(shape, 0.05, None)
    weekly = bool(rng.random() < 0.6) if weekly is None else weekly
    dow = rng.uniform(0.7, 1.3, 7) if weekly else np.ones(7)
    week = dow[(i // per_day) % 7]
    trend = 1 + rng.uniform(-0.15, 0.15) * i / max(n, 1)
    return level * shape * week * trend


def noisy(mu: np.ndarray, rng: np.random.Generator, kind: str = "count") -> np.ndarray:
    """Counts: Poisson with a random multiplicative over-dispersion; money/gauge: lognormal noise."""
    over = np.exp(rng.normal(0, rng.uniform(0.02, 0.12), mu.size))
    if kind == "count":
        return rng.poisson(mu * over).astype(float)
    return mu * over * np.exp(rng.normal(0, 0.03, mu.size))


def inject(values: np.ndarray, incident: Incident, per_day: int) -> np.ndarray:
    out = values.copy()
    end = out.size if incident.kind == "level_shift" else min(out.size, incident.start + incident.length)
    out[incident.start:end] = np.round(out[incident.start:end] * incident.factor) \
        if np.all(values == np.round(values)) else out[incident.start:end] * incident.factor
    return out


def random_incident(rng: np.random.Generator, start_range: tuple[int, int], per_day: int,
                    kind: str | None = None) -> Incident:
    kind = kind or str(rng.choice(INCIDENT_TYPES))
    start = int(rng.integers(*start_range))
    if kind == "spike":
        return Incident(kind, start, int(rng.integers(1, 4)), float(rng.uniform(1.8, 3.0)))
    if kind == "drop":
        return Incident(kind, start, int(rng.integers(2, 7)), float(rng.uniform(0.2, 0.5)))
    if kind == "outage":
        return Incident(kind, start, int(rng.integers(1, 5)), 0.0)
    return Incident(kind, start, 0, float(rng.choice([rng.uniform(0.4, 0.65), rng.uniform(1.5, 2.0)])))


def scenario(seed: int, *, days: int = 28, eval_days: int = 7, cadence_seconds: int = 3600,
             kind: str = "count", incident: bool = True, level: float | None = None
             ) -> tuple[np.ndarray, np.ndarray, list[Incident]]:
    """(times, values, incidents): one series, at most one incident inside the last `eval_days`."""
    rng = np.random.default_rng(seed)
    per_day = max(1, 86400 // cadence_seconds)
    n = days * per_day
    mu = baseline(n, per_day, rng, level=level)
    values = noisy(mu, rng, kind)
    incidents: list[Incident] = []
    if incident:
        inc = random_incident(rng, (n - eval_days * per_day + per_day, n - per_day), per_day)
        values = inject(values, inc, per_day)
        incidents.append(inc)
    times = np.datetime64("2024-01-01T00:00:00", "s") + np.arange(n) * np.timedelta64(cadence_seconds, "s")
    return times, values, incidents
