"""Noise control: which confirmed buckets become anomalies, grouped into incidents.

Filters per tenant and metric: direction (drops only, spikes only, both), minimum relative change,
known-event calendar (a planned flash sale or holiday either mutes the buckets or marks them), and a
minimum duration in consecutive anomalous buckets. Everything is causal: a run is reported at the bucket
where it reaches `min_duration` (detected_at), with occurred_at = the run's first bucket, so a backfill
walked in order yields the same incidents as live evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from scoring.kpi.series import as_seconds

DIRECTIONS = {"both": 0, "up": 1, "down": -1}


@dataclass(frozen=True)
class KnownEvent:
    """A planned event [start, end): action 'mute' drops anomalies inside, 'mark' keeps and labels them."""

    start: object
    end: object
    name: str = ""
    action: str = "mute"


@dataclass(frozen=True)
class NoiseConfig:
    direction: str = "both"
    min_relative_change: float = 0.0
    min_duration: int = 1
    calendar: Sequence[KnownEvent] = ()


@dataclass
class Incident:
    start_index: int
    detected_index: int
    end_index: int
    occurred_at: np.datetime64
    detected_at: np.datetime64
    last_at: np.datetime64
    direction: int
    buckets: int
    events: list[str] = field(default_factory=list)


def calendar_masks(times: object, calendar: Sequence[KnownEvent]) -> tuple[np.ndarray, np.ndarray]:
    """(muted, marked names) per point: names joined with ',' for the events covering it."""
    t = as_seconds(times)
    muted = np.zeros(t.shape, dtype=bool)
    names = np.full(t.shape, "", dtype=object)
    for ev in calendar:
        lo, hi = as_seconds(np.asarray([ev.start, ev.end], dtype="datetime64[s]"))
        inside = (t >= lo) & (t < hi)
        if ev.action == "mute":
            muted |= inside
        else:
            names = np.where(inside & (names != ""), names + "," + ev.name, np.where(inside, ev.name, names))
    return muted, names


def filter_points(times: object, confirmed: np.ndarray, direction: np.ndarray, relative_change: np.ndarray,
                  config: NoiseConfig) -> tuple[np.ndarray, np.ndarray]:
    """Point-wise filters (direction, minimum change, calendar); returns (kept mask, event names)."""
    keep = np.asarray(confirmed, dtype=bool).copy()
    want = DIRECTIONS[config.direction]
    if want:
        keep &= np.asarray(direction) == want
    if config.min_relative_change > 0:
        keep &= np.abs(np.nan_to_num(relative_change, nan=0.0, posinf=np.inf)) >= config.min_relative_change
    muted, names = calendar_masks(times, config.calendar)
    keep &= ~muted
    return keep, names


def incidents(times: object, keep: np.ndarray, direction: np.ndarray, min_duration: int = 1,
              names: np.ndarray | None = None) -> list[Incident]:
    """Group consecutive kept buckets (same direction) into incidents of at least `min_duration`."""
    t = np.asarray(times).astype("datetime64[s]")
    keep = np.asarray(keep, dtype=bool)
    d = np.asarray(direction)
    # run boundaries: a kept bucket starts a run when the previous one is not kept or moved the other way
    prev_keep = np.r_[False, keep[:-1]]
    prev_dir = np.r_[0, d[:-1]]
    starts = np.flatnonzero(keep & ~(prev_keep & (prev_dir == d)))
    out: list[Incident] = []
    for s in starts:
        e = s
        while e + 1 < keep.size and keep[e + 1] and d[e + 1] == d[s]:
            e += 1
        n = e - s + 1
        if n < min_duration:
            continue
        det = s + min_duration - 1
        events = sorted({x for nm in (names[s:e + 1] if names is not None else []) for x in str(nm).split(",") if x})
        out.append(Incident(int(s), int(det), int(e), t[s], t[det], t[e], int(d[s]), int(n), events))
    return out


def apply_noise_control(times: object, confirmed: np.ndarray, direction: np.ndarray,
                        relative_change: np.ndarray, config: NoiseConfig | None = None) -> list[Incident]:
    cfg = config or NoiseConfig()
    keep, names = filter_points(times, confirmed, direction, relative_change, cfg)
    return incidents(times, keep, direction, cfg.min_duration, names)
