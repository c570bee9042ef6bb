"""Stock-out prediction: days of cover from recent sales velocity, alerts before thresholds are hit.

Vectorised over products. Alert levels, most severe first:
- critical: level at/below the critical threshold, or stock runs out before a reorder placed now could
  arrive (days of cover <= lead time);
- warning: level at/below the warning threshold, or the level will cross the critical threshold within
  the lead time, or stock runs out within lead time + `safety_days`.
Velocity is conservative for stock-outs: the higher of the recent-week average and the last day, so a
demand surge shortens the predicted cover immediately instead of being averaged away.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVELS = ("ok", "warning", "critical")


@dataclass
class StockForecast:
    days_of_cover: np.ndarray  # inf when nothing sells
    stockout_at: np.ndarray  # datetime64[s], NaT when nothing sells
    days_to_warning: np.ndarray  # days until the level crosses the warning threshold (0 if already below)
    days_to_critical: np.ndarray
    alert: np.ndarray  # object array: 'ok' / 'warning' / 'critical'
    reason: np.ndarray  # object array, plain-language reason ('' when ok)


def sales_velocity_per_day(daily_units: np.ndarray, window_days: int = 7) -> np.ndarray:
    """Units/day per product (rows = products, columns = days, last column = the latest full day)."""
    u = np.atleast_2d(np.asarray(daily_units, dtype=float))
    week = np.nanmean(u[:, -window_days:], axis=1)
    last = u[:, -1]
    return np.fmax(np.nan_to_num(week), np.nan_to_num(last))


def _days_until(level: np.ndarray, threshold: np.ndarray, velocity: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(velocity > 0, (level - threshold) / np.where(velocity > 0, velocity, 1), np.inf)
    return np.where(level <= threshold, 0.0, d)


def stockout_forecast(levels: object, sales_velocity_per_day: object, lead_time_days: object, *,
                      warning_threshold: object = 0.0, critical_threshold: object = 0.0,
                      safety_days: float = 3.0, now: object | None = None) -> StockForecast:
    """Days of cover, predicted stock-out time and alert level per product (all inputs broadcast)."""
    level, vel, lead, warn, crit = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(x, dtype=float)) for x in (levels, sales_velocity_per_day, lead_time_days,
                                                 warning_threshold, critical_threshold)))
    level = np.maximum(level, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cover = np.where(vel > 0, level / np.where(vel > 0, vel, 1), np.inf)
    to_warn = _days_until(level, warn, vel)
    to_crit = _days_until(level, crit, vel)
    now_s = np.datetime64("now", "s") if now is None else np.asarray(now).astype("datetime64[s]")[()]
    finite = np.isfinite(cover)
    secs = np.where(finite, np.round(np.where(finite, cover, 0) * 86400), 0).astype(np.int64)
    stockout_at = np.where(finite, now_s + secs.astype("timedelta64[s]"), np.datetime64("NaT"))

    critical = (level <= crit) | (cover <= lead)
    warning = ~critical & ((level <= warn) | (to_crit <= lead) | (cover <= lead + safety_days))
    alert = np.where(critical, "critical", np.where(warning, "warning", "ok")).astype(object)
    reason = np.full(level.shape, "", dtype=object)
    msgs = [
        (level <= crit, "stock {lv:.0f} at/below critical threshold {c:.0f}"),
        (~(level <= crit) & (cover <= lead), "{cv:.1f} days of cover, shorter than lead time {ld:.1f} days"),
        (~critical & (level <= warn), "stock {lv:.0f} at/below warning threshold {w:.0f}"),
        (~critical & ~(level <= warn) & (to_crit <= lead),
         "critical threshold {c:.0f} reached in {tc:.1f} days, within lead time {ld:.1f} days"),
        (~critical & ~(level <= warn) & ~(to_crit <= lead) & (cover <= lead + safety_days),
         "{cv:.1f} days of cover, within lead time + {sf:.0f} safety days"),
    ]
    for mask, fmt in msgs:
        for i in zip(*np.nonzero(mask), strict=False):
            if not reason[i]:
                reason[i] = fmt.format(lv=level[i], c=crit[i], w=warn[i], cv=cover[i], ld=lead[i],
                                       tc=to_crit[i], sf=safety_days)
    return StockForecast(cover, stockout_at, to_warn, to_crit, alert, reason)
