"""Stock-out prediction: days of cover from sales velocity, and stock alerts per episode.

`stockout_forecast`: vectorised alert level per product from its level alone (critical: at/below the
critical threshold or cover <= lead time; warning: at/below the warning threshold, critical threshold
within the lead time, or cover <= lead time + `safety_days`).
`stock_episodes` (what monitoring alerts on): one alert per escalation of an episode that opens at the
reorder point or a predicted stock-out and closes on the restock; see its docstring.
Velocity: `sales_velocity_per_day` (rollups: the recent-week average, or the last day on a significant
surge: beyond 3 sd of the earlier days' own noise, Poisson at least, and at least double) is the prior
of `depletion_velocity`, the pace at which the level itself falls.
"""

from __future__ import annotations

import warnings
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
    last = np.nan_to_num(u[:, -1])
    earlier = u[:, -window_days:-1]
    with warnings.catch_warnings():  # days before the data began are NaN: all-NaN rows are expected
        warnings.simplefilter("ignore", RuntimeWarning)
        week = np.nan_to_num(np.nanmean(u[:, -window_days:], axis=1))
        if earlier.shape[1] == 0:
            return np.fmax(week, last)
        base = np.nan_to_num(np.nanmean(earlier, axis=1))
        spread = np.nan_to_num(np.nanstd(earlier, axis=1))
    sd = np.fmax(spread, np.sqrt(np.fmax(base, 1.0)))
    surge = (last > base + 3.0 * sd) & (last > 2.0 * base)
    return np.where(surge, np.fmax(week, last), week)


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


# ---------------------------------------------------------------------------------------------- episodes
# Alert states of a product's stock episode, in escalation order. An episode opens when the level reaches
# the reorder point (warning threshold) or a stock-out is predicted, and closes on the restock.
EPISODE_STATES = ("ok", "open", "risk", "out")


@dataclass
class EpisodeStep:
    state: np.ndarray  # object array, one of EPISODE_STATES after this check
    reorder_at: np.ndarray  # datetime64[s]: when the level was first seen at/below the reorder point (NaT: not yet)
    alert: np.ndarray  # object array: '' (nothing new), 'low', 'risk' or 'out'
    days_of_cover: np.ndarray
    stockout_at: np.ndarray  # datetime64[s], NaT when nothing sells
    restock_expected_at: np.ndarray  # datetime64[s]: reorder point reached (or projected) + lead time
    reason: np.ndarray  # object array, plain-language reason of the alert ('' when none)


def stock_episodes(state: object, reorder_at: object, last_level: object, level: object, velocity: object,
                   lead_time_days: object, *, warning_threshold: object, critical_threshold: object = 0.0,
                   safety_days: float = 3.0, alert_low: object = False, now: object,
                   level_at: object | None = None) -> EpisodeStep:
    """One stock check per product: at most one alert of each kind per episode, escalating only.

    - 'out': the level is at/below the critical threshold (0 unless configured): the product is out.
    - 'risk': at current velocity stock runs out within lead time + `safety_days` AND before the expected
      restock, i.e. before a reorder placed when the level reached the reorder point (or will reach it)
      could arrive. A normal cycle (reorder point covering the lead time) never raises it; a demand surge
      or a reorder point too low for the current velocity does, once.
    - 'low': the level reached the reorder point, only where the tenant asked for it (`alert_low`, an
      explicitly configured warning threshold): in a normal restock cycle that crossing is expected.
    `level_at` (data time of each level, default `now`) dates the reorder point crossing.
    The episode closes (state 'ok', re-armed) on a restock: the level rose since the previous check, is
    above the reorder point and clearly not at risk (cover > 1.5 x (lead + safety)), so sales noise around
    a cut and partial deliveries do not re-alert; after a stock-out, any restock above the reorder point
    closes it (the next stock-out is news). A restock that is overdue is expected any moment: no
    'risk' then; the 'out' alert covers what follows.
    """
    st, reorder, last, lv, vel, lead, warn, crit, low_ok = np.broadcast_arrays(
        np.atleast_1d(np.asarray(state, dtype=object)),
        np.atleast_1d(np.asarray(reorder_at, dtype="datetime64[s]")),
        *(np.atleast_1d(np.asarray(x, dtype=float)) for x in (last_level, level, velocity, lead_time_days,
                                                             warning_threshold, critical_threshold)),
        np.atleast_1d(np.asarray(alert_low, dtype=bool)))
    rank = {s: i for i, s in enumerate(EPISODE_STATES)}
    st_rank = np.array([rank.get(str(s), 0) for s in st], dtype=np.int64)
    reorder = reorder.copy()
    lv = np.maximum(lv, 0.0)
    now_s = np.asarray(now).astype("datetime64[s]")[()]
    day = np.timedelta64(86400, "s")
    with np.errstate(divide="ignore", invalid="ignore"):
        cover = np.where(vel > 0, lv / np.where(vel > 0, vel, 1), np.inf)
    horizon = lead + safety_days
    out = lv <= crit
    low = lv <= warn
    rose = np.isfinite(last) & (lv > last)
    clear = ~low & ~out & (cover > 1.5 * horizon)
    # a product that was out is back once restocked above its reorder point: its next stock-out alerts
    back = ~low & ~out & (st_rank == rank["out"])
    closing = (st_rank > 0) & rose & (clear | back)
    st_rank = np.where(closing, 0, st_rank)
    reorder = np.where(closing, np.datetime64("NaT"), reorder)
    seen = np.broadcast_to(np.asarray(now_s if level_at is None else level_at, dtype="datetime64[s]"), lv.shape)
    reorder = np.where(low & np.isnat(reorder), np.fmin(seen, now_s), reorder)

    def in_days(days: np.ndarray) -> np.ndarray:
        finite = np.isfinite(days)
        secs = np.round(np.where(finite, days, 0.0) * 86400).astype(np.int64).astype("timedelta64[s]")
        return np.where(finite, now_s + secs, np.datetime64("NaT"))

    with np.errstate(divide="ignore", invalid="ignore"):
        to_warn = np.where(vel > 0, (lv - warn) / np.where(vel > 0, vel, 1), np.inf)
    projected = np.where(np.isnat(reorder), in_days(to_warn), reorder)  # when the reorder is (to be) placed
    lead_s = (np.round(lead * 86400).astype(np.int64)).astype("timedelta64[s]")
    restock = projected + lead_s
    restock = np.where(~np.isnat(restock) & (restock < now_s), now_s, restock)  # overdue: any moment now
    stockout = in_days(cover)
    before_restock = ~np.isnat(stockout) & (np.isnat(restock) | (stockout < restock))
    risk = ~out & (cover <= horizon) & before_restock

    alert = np.full(lv.shape, "", dtype=object)
    reason = np.full(lv.shape, "", dtype=object)
    new_out = out & (st_rank < rank["out"])
    new_risk = ~out & risk & (st_rank < rank["risk"])
    new_low = ~out & ~risk & low & low_ok & (st_rank < rank["open"])
    alert[new_out], alert[new_risk], alert[new_low] = "out", "risk", "low"
    st_rank = np.where(new_out, rank["out"], np.where(new_risk, rank["risk"], st_rank))
    st_rank = np.where((st_rank == 0) & (low | risk | out), rank["open"], st_rank)
    for i in np.flatnonzero(alert != ""):
        if alert[i] == "out":
            reason[i] = f"stock {lv[i]:.0f} at/below critical threshold {crit[i]:.0f}: out of stock"
        elif alert[i] == "low":
            reason[i] = f"stock {lv[i]:.0f} at/below warning threshold {warn[i]:.0f}"
        else:
            when = "now" if restock[i] <= now_s else f"in {(restock[i] - now_s) / day:.1f} days"
            reason[i] = (f"{cover[i]:.1f} days of cover at {vel[i]:.1f} units/day: runs out before the "
                         f"expected restock ({when}, lead time {lead[i]:.1f} days)")
    states = np.array(EPISODE_STATES, dtype=object)[st_rank]
    return EpisodeStep(states, reorder, alert, cover, stockout, restock, reason)


def depletion_velocity(prior: object, last_level: object, last_at: object, level: object, level_at: object,
                       *, window_days: float = 7.0) -> np.ndarray:
    """Units/day at which the stock level itself falls: an exponentially weighted mean of the drops
    between successive levels (weight 1 - exp(-elapsed / window)), starting from `prior` (the sales
    velocity from rollups when nothing is known yet). Rises (restocks) and unknown / non-advancing times
    leave it unchanged. Stock-outs are about the level, and sales rollups may credit a product with the
    units of a whole basket, or miss lines of it, so the level's own pace corrects them over a week."""
    prior_v, last, lv = (np.atleast_1d(np.asarray(x, dtype=float)) for x in (prior, last_level, level))
    t0 = np.atleast_1d(np.asarray(last_at, dtype="datetime64[s]"))
    t1 = np.atleast_1d(np.asarray(level_at, dtype="datetime64[s]"))
    prior_v, last, lv, t0, t1 = np.broadcast_arrays(prior_v, last, lv, t0, t1)
    with np.errstate(invalid="ignore"):
        days = (t1 - t0).astype("timedelta64[s]").astype(float) / 86400.0
    ok = ~np.isnat(t0) & ~np.isnat(t1) & np.isfinite(last) & (days > 0) & (lv <= last)
    rate = np.where(ok, (last - lv) / np.where(ok, days, 1.0), 0.0)
    alpha = np.where(ok, 1.0 - np.exp(-np.where(ok, days, 0.0) / window_days), 0.0)
    base = np.where(np.isfinite(prior_v), prior_v, rate)
    return np.where(ok, (1 - alpha) * base + alpha * rate, base)
