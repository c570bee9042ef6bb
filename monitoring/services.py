"""Writes of KPI monitoring: default watched series, evaluation of closed buckets (live and backfill, the
same walk), fit caches, late-data rewinds, stock alerts.

Evaluation in one sentence: every watched series of a cadence is put on the tenant's local-time grid,
each closed bucket since the series' last evaluated one is scored in timestamp order with only earlier
buckets as history (monitoring.engine), and each incident (a run of anomalous buckets) becomes one
Anomaly, created when the run reaches its minimum duration and updated while it lasts.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.utils import timezone

from scoring.kpi.consensus import SEVERITIES
from scoring.kpi.rootcause import contributions, ratio_contributions
from scoring.kpi.series import Cadence, infer_cadence
from scoring.models import Anomaly
from scoring.rollups import DIMENSIONS, KPIS
from scoring.services import anomalies_record, anomaly_fingerprint

from . import selectors
from .engine import (
    CalendarEntry,
    GroupEngine,
    Incident,
    RunState,
    SeriesSpec,
    default_detectors,
    history_buckets,
    prophet_history,
)
from .models import KnownEvent, MonitorState, SeriesFit, SeriesState, StockAlertState, WatchedSeries

log = logging.getLogger(__name__)

PROPORTIONS = ("ctr", "conversion_rate", "return_rate", "payment_failure_rate")

# (metric, dimension, granularity, direction, min_duration): what a new tenant watches.
DEFAULT_WATCH: tuple[tuple[str, str, str, str, int], ...] = (
    ("revenue", "total", "hour", "both", 1),
    ("orders", "total", "hour", "both", 1),
    ("conversion_rate", "total", "hour", "both", 1),
    ("aov", "total", "hour", "both", 1),
    ("revenue", "channel", "hour", "both", 1),  # sales per channel
    ("orders", "channel", "hour", "both", 1),
    ("conversion_rate", "channel", "hour", "both", 1),
    ("aov", "channel", "hour", "both", 1),
    ("ctr", "campaign", "hour", "down", 1),  # campaign collapses
    ("conversion_rate", "campaign", "hour", "down", 1),
    ("payment_failure_rate", "total", "hour", "up", 1),
    ("return_rate", "total", "day", "up", 1),
    ("revenue", "total", "day", "both", 1),
    ("orders", "total", "minute", "down", 10),  # fast outage signal for busy shops
    ("avg_unit_price", "product", "hour", "down", 1),  # a product selling below its usual price
)


def metric_kind(metric: str) -> str:
    kpi = KPIS.get(metric)
    if kpi is None:
        return "gauge"  # a client metric: its unit is unknown
    if kpi.denominator is not None:
        return "proportion" if metric in PROPORTIONS else "gauge"
    return "money" if kpi.money else "count"


# ----------------------------------------------------------------------------- configuration

def monitor_state() -> MonitorState:
    state = MonitorState.objects.order_by("id").first()
    return state or MonitorState.objects.create()


def watched_defaults_ensure() -> int:
    """Create the default watched series once per tenant (deleting them later is respected)."""
    state = monitor_state()
    if state.defaults_created:
        return 0
    rows = [WatchedSeries(metric=m, dimension=d, value="", granularity=g, direction=direction, min_duration=n,
                          is_default=True) for m, d, g, direction, n in DEFAULT_WATCH]
    WatchedSeries.objects.bulk_create(rows, ignore_conflicts=True)
    MonitorState.objects.filter(pk=state.pk).update(defaults_created=True)
    return len(rows)


def late_data_note(*, batch: Any = None, events: list[dict[str, Any]]) -> None:
    """Batch consumer: events older than what was already evaluated make the next evaluation walk again
    from their time (in order, no look-ahead), so a backfill ends with the anomalies a live run would
    have raised on the same data. Also re-checks stock when a batch carried stock levels or orders."""
    times = [e["occurred_at"] for e in events if e.get("occurred_at") is not None and e.get("type") != "stock"]
    if times:
        oldest = min(times)
        frontier = SeriesState.objects.filter(last_bucket__isnull=False).order_by("-last_bucket") \
            .values_list("last_bucket", flat=True).first()
        if frontier is not None and oldest <= frontier:
            state = monitor_state()
            if state.rewind_to is None or oldest < state.rewind_to:
                MonitorState.objects.filter(pk=state.pk).update(rewind_to=oldest)
    if any(e.get("type") == "stock" for e in events):
        transaction.on_commit(_stock_check_later)


def _stock_check_later() -> None:
    from .tasks import stock_check

    stock_check.delay()


# ----------------------------------------------------------------------------- evaluation

@dataclass
class Member:
    spec: SeriesSpec
    state: SeriesState
    source: str  # kpi | metric


def _calendar(events: list[KnownEvent], metric: str, dimension: str, value: str) -> tuple[CalendarEntry, ...]:
    out = []
    for e in events:
        if e.metrics and metric not in e.metrics:
            continue
        if e.dimension and e.dimension != dimension:
            continue
        if e.value and e.value != value:
            continue
        out.append(CalendarEntry(int(e.start.timestamp()), int(e.end.timestamp()), e.name, e.action))
    return tuple(out)


def _spec(ws: WatchedSeries, value: str, granularity: str, cadence_seconds: int,
          events: list[KnownEvent]) -> SeriesSpec:
    kind = metric_kind(ws.metric)
    detectors = tuple(ws.detectors) or default_detectors(kind, granularity, cadence_seconds)
    if kind != "proportion":
        detectors = tuple("seasonal_z" if d == "ratio_binomial" else d for d in detectors)
    return SeriesSpec(ws.metric, ws.dimension, value if ws.dimension != "total" else "", granularity, kind,
                      detectors, ws.consensus, ws.direction, ws.min_relative_change, max(1, ws.min_duration),
                      ws.z_threshold, _calendar(events, ws.metric, ws.dimension, value))


def _members(*, tenant: Any, cfg: Any, granularities: set[str] | None,
             rewind: datetime | None) -> dict[tuple[str, int], list[Member]]:
    """Concrete series per (granularity, cadence seconds), wildcards expanded, states created."""
    events = selectors.known_events()
    states = {(s.metric, s.dimension, s.value, s.granularity): s for s in SeriesState.objects.all()}
    frontier: dict[str, datetime | None] = {}
    for s in states.values():
        if s.last_bucket is not None and (frontier.get(s.granularity) is None or s.last_bucket < frontier[s.granularity]):
            frontier[s.granularity] = s.last_bucket
    if rewind is not None:
        frontier = {g: min(t, rewind) if t else None for g, t in frontier.items()}
    chosen: dict[tuple[str, str, str, str], tuple[WatchedSeries, str]] = {}
    rules = sorted(selectors.watched_series(), key=lambda w: w.value == "")  # specific rules first
    for ws in rules:
        if granularities is not None and (ws.granularity if ws.metric in KPIS else "native") not in granularities:
            continue
        if ws.metric in KPIS:
            if ws.granularity == "native" or (ws.granularity == "minute" and ws.dimension not in cfg.minute_dimensions):
                continue
            if ws.dimension == "total":
                values = [""]
            elif ws.value:
                values = [ws.value]
            else:
                known = {k[2] for k in states if k[0] == ws.metric and k[1] == ws.dimension and k[3] == ws.granularity}
                since = frontier.get(ws.granularity) if known else None
                values = sorted(known | set(selectors.kpi_values(granularity=ws.granularity, dimension=ws.dimension,
                                                                 since=since)))
            granularity = ws.granularity
        else:
            values = [ws.value] if ws.value or ws.dimension == "total" else selectors.metric_values(
                metric=ws.metric, dimension=ws.dimension)
            if ws.dimension == "total":
                values = [""]
            granularity = "native"
        for value in values:
            key = (ws.metric, ws.dimension, value, granularity)
            chosen.setdefault(key, (ws, value))
    missing = [SeriesState(metric=k[0], dimension=k[1], value=k[2], granularity=k[3]) for k in chosen if k not in states]
    if missing:
        SeriesState.objects.bulk_create(missing, ignore_conflicts=True)
        for s in SeriesState.objects.filter(last_bucket__isnull=True):
            states[(s.metric, s.dimension, s.value, s.granularity)] = s
    groups: dict[tuple[str, int], list[Member]] = defaultdict(list)
    for key, (ws, value) in chosen.items():
        state = states.get(key)
        if state is None:
            continue
        if key[3] == "native":
            times = selectors.metric_point_times(metric=ws.metric, dimension=ws.dimension, value=value)
            if len(times) < 2:
                continue
            seconds = infer_cadence(np.array(sorted(times), dtype="datetime64[s]")).seconds
            groups[("native", seconds)].append(Member(_spec(ws, value, "native", seconds, events), state, "metric"))
        else:
            seconds = selectors.GRANULARITY_SECONDS[key[3]]
            groups[(key[3], seconds)].append(Member(_spec(ws, value, key[3], seconds, events), state, "kpi"))
    return groups


def kpi_evaluate(*, tenant: Any = None, now: datetime | None = None,
                 granularities: set[str] | None = None) -> dict[str, int]:
    """Evaluate every watched series for each bucket closed since its last evaluation (or since late
    data arrived), in timestamp order. Returns counters (buckets evaluated, anomalies created/updated)."""
    from tenants.config import tenant_section
    from tenants.selectors import tenant_current

    tenant = tenant or tenant_current()
    cfg = tenant_section(tenant, "kpi")
    now = now or timezone.now()
    if cfg.watch_defaults:
        watched_defaults_ensure()
    state = monitor_state()
    rewind = state.rewind_to
    totals = {"series": 0, "buckets": 0, "created": 0, "updated": 0}
    groups = _members(tenant=tenant, cfg=cfg, granularities=granularities, rewind=rewind)
    for (granularity, seconds), members in sorted(groups.items()):
        with transaction.atomic():
            counts = _evaluate_group(tenant=tenant, cfg=cfg, granularity=granularity, cadence=Cadence(seconds),
                                     members=members, now=now, rewind=rewind)
        for k, v in counts.items():
            totals[k] += v
    updates: dict[str, Any] = {"last_run_at": timezone.now()}
    if rewind is not None:
        updates["rewind_to"] = None
    MonitorState.objects.filter(pk=state.pk).update(**updates)
    if totals["buckets"]:
        from django.db.models import F

        MonitorState.objects.filter(pk=state.pk).update(buckets_evaluated=F("buckets_evaluated") + totals["buckets"])
    return totals


def _first_indexes(members: list[Member], granularity: str, seconds: int, tz: str) -> np.ndarray:
    """Grid index of each series' first bucket with data (where its history begins)."""
    first = np.full(len(members), np.iinfo(np.int64).max, np.int64)
    if granularity == "native":
        for i, m in enumerate(members):
            times = selectors.metric_frames(metric=m.spec.metric, keys=[(m.spec.dimension, m.spec.value)],
                                            start=datetime(1970, 1, 2, tzinfo=UTC),
                                            end=timezone.now() + pd.Timedelta(days=3650))
            times = times[times["value"] == m.spec.value]
            if len(times):
                first[i] = int(selectors.local_index([times["at"].min()], seconds, tz)[0])
        return first
    keys = sorted({(m.spec.dimension, m.spec.value) for m in members})
    found = selectors.first_buckets(granularity=granularity, keys=keys)
    rows = [i for i, m in enumerate(members) if (m.spec.dimension, m.spec.value) in found]
    if rows:
        first[rows] = selectors.local_index([found[(members[i].spec.dimension, members[i].spec.value)] for i in rows],
                                            seconds, tz)
    return first


def _evaluate_group(*, tenant: Any, cfg: Any, granularity: str, cadence: Cadence, members: list[Member],
                    now: datetime, rewind: datetime | None) -> dict[str, int]:
    tz = tenant.timezone
    c = cadence.seconds
    close = selectors.last_closed_index(now, c, tz, cfg.close_grace_seconds)
    first = _first_indexes(members, granularity, c, tz)
    rewind_idx = int(selectors.local_index([rewind], c, tz)[0]) if rewind is not None else None
    has_last = np.array([m.state.last_bucket is not None for m in members], dtype=bool)
    starts = first.copy()
    if has_last.any():
        lasts = [m.state.last_bucket for m in members if m.state.last_bucket is not None]
        starts[has_last] = selectors.local_index(lasts, c, tz) + 1
    rewound = np.zeros(len(members), bool)
    if rewind_idx is not None:
        rewound = has_last & (rewind_idx < starts)
        starts = np.where(rewound, np.maximum(first, rewind_idx), starts)
    due = np.flatnonzero(starts <= close)
    if due.size == 0:
        return {"series": 0, "buckets": 0, "created": 0, "updated": 0}
    members = [members[i] for i in due]
    starts, first, rewound = starts[due], first[due], rewound[due]
    g0 = int(starts.min())
    g1 = int(min(close, g0 + cfg.max_steps_per_run - 1))
    refit = cfg.prophet_refit_days.get("native" if granularity == "native" else granularity, 1)
    refit_buckets = max(1, refit * 86400 // c)
    models_used = any(d in ("prophet", "iforest") for m in members for d in m.spec.detectors)
    pre = history_buckets(cadence) + (cadence.per_day if c >= 3600 else 0)  # seasons are fitted at local midnight
    if models_used:
        pre = max(pre, prophet_history(cadence) + max(refit_buckets, 7 * 86400 // c))
    lo = g0 - pre
    T = g1 - lo + 1
    utc = selectors.index_utc(np.arange(lo, g1 + 1), c, tz)
    values, num, den = _matrices(members, granularity, c, tz, lo, T, utc, first)
    baseline = _rate_baseline(members, c, tz, lo, T, g0, g1, first) if c < 3600 and granularity != "native" else None

    engine = GroupEngine([m.spec for m in members], cadence, lo, values, utc, numerators=num, denominators=den,
                         prophet_refit_buckets=refit_buckets, seasonal=c >= 3600,
                         runs=_runs(members, c, tz, rewound), baseline=baseline)
    fits = {f.state_id: f for f in SeriesFit.objects.filter(state__in=[m.state for m in members], detector="prophet")}
    for r, m in enumerate(members):
        if rewound[r]:
            continue  # late data changed the history these caches were fitted on
        if m.state.period is not None and m.state.period_boundary is not None:
            engine.set_period(r, m.state.period, m.state.period_boundary)
        fit = fits.get(m.state.pk)
        if fit is not None:
            t = fit.table
            engine.set_prophet(r, fit.boundary, t["start"], np.array([t["yhat"], t["lower"], t["upper"]], dtype=float))
    native = granularity == "native"
    for g in range(g0, g1 + 1):
        rows = np.flatnonzero(starts <= g)
        if native:
            rows = rows[np.isfinite(values[rows, g - lo])]
        engine.step(rows, g)
    created, updated = _write_incidents(tenant, engine, members, granularity, c, tz)
    _save_states(engine, members, starts, g1, c, tz, utc, lo)
    return {"series": len(members), "buckets": engine.evaluated, "created": created, "updated": updated}


def _rate_baseline(members: list[Member], c: int, tz: str, lo: int, T: int, g0: int, g1: int,
                   first: np.ndarray) -> np.ndarray | None:
    """Expected count per sub-hourly bucket of count series, for the buckets to evaluate [g0, g1]: the
    seasonal rate of its local hour from the hour rollups (scoring.kpi.baseline), spread evenly. Reads
    only the slots used (same hour-of-week in 5 previous weeks, same hour on 7 previous days)."""
    from scoring.kpi.baseline import DAYS, WEEKS, slot_expected

    rows = [i for i, m in enumerate(members) if m.spec.kind == "count" and "seasonal_z" in m.spec.detectors
            and 3600 % c == 0]
    if not rows:
        return None
    per_hour = 3600 // c
    idx = np.arange(g0, g1 + 1)
    hours = np.unique(idx // per_hour)
    weeks = hours[:, None] - 168 * np.arange(1, WEEKS + 1)[None, :]
    days = hours[:, None] - 24 * np.arange(1, DAYS + 1)[None, :]
    slots = np.unique(np.r_[weeks.ravel(), days.ravel()])
    slot_utc = selectors.index_utc(slots, 3600, tz)
    keys = sorted({(members[i].spec.dimension, members[i].spec.value) for i in rows})
    measures = sorted({KPIS[members[i].spec.metric].numerator for i in rows})
    frame = selectors.kpi_frames(granularity="hour", keys=keys, start=selectors.utc_datetime(int(slot_utc.min())),
                                 end=selectors.utc_datetime(int(slot_utc.max()) + 3600), measures=measures,
                                 at=[selectors.utc_datetime(int(x)) for x in slot_utc])
    kpos = {k: i for i, k in enumerate(keys)}
    spos = {int(x): i for i, x in enumerate(slot_utc)}
    out = np.full((len(members), T), np.nan)
    for name in measures:
        grid = np.zeros((len(keys), slots.size))
        if len(frame):
            ki = np.array([kpos[(d, v)] for d, v in zip(frame["dimension"], frame["value"], strict=True)])
            si = np.array([spos.get(int(e), -1) for e in frame["epoch"]])
            ok = si >= 0
            np.add.at(grid, (ki[ok], si[ok]), frame[name].to_numpy(dtype=float)[ok])
        sel = np.array([i for i in rows if KPIS[members[i].spec.metric].numerator == name], dtype=np.int64)
        if sel.size == 0:
            continue
        series = grid[[kpos[(members[i].spec.dimension, members[i].spec.value)] for i in sel]]
        # before the series' first data: unknown, not zero
        series = np.where(slots[None, :] * per_hour >= first[sel][:, None], series, np.nan)
        w = series[:, np.searchsorted(slots, weeks)]  # series x hours x weeks
        d = series[:, np.searchsorted(slots, days)]
        per_hour_expected = slot_expected(w.reshape(-1, WEEKS), d.reshape(-1, DAYS)).reshape(sel.size, hours.size)
        per_bucket = per_hour_expected / per_hour
        out[np.ix_(sel, idx - lo)] = per_bucket[:, np.searchsorted(hours, idx // per_hour)]
    return out


def _matrices(members: list[Member], granularity: str, c: int, tz: str, lo: int, T: int, utc: np.ndarray,
              first: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    S = len(members)
    values = np.full((S, T), np.nan)
    start = selectors.utc_datetime(int(utc[0]))
    end = selectors.utc_datetime(int(utc[-1]) + c)
    if granularity == "native":
        by_metric: dict[str, list[int]] = defaultdict(list)
        for i, m in enumerate(members):
            by_metric[m.spec.metric].append(i)
        from tenants.config import tenant_section  # noqa: F401 - aggregation from the kpi section below
        from tenants.selectors import tenant_current

        aggregation = tenant_section(tenant_current(), "kpi").metric_aggregation
        for metric, rows in by_metric.items():
            frame = selectors.metric_frames(metric=metric, keys=[(members[i].spec.dimension, members[i].spec.value)
                                                                 for i in rows], start=start, end=end)
            if frame.empty:
                continue
            frame["col"] = selectors.local_index(frame["at"], c, tz) - lo
            frame = frame[(frame["col"] >= 0) & (frame["col"] < T)].sort_values("at")
            how = aggregation.get(metric, "mean")
            for i in rows:
                part = frame[(frame["dimension"] == members[i].spec.dimension) & (frame["value"] == members[i].spec.value)]
                if part.empty:
                    continue
                g = part.groupby("col").agg(total=("total", "sum"), count=("count", "sum"), last=("last", "last"))
                v = {"sum": g["total"], "mean": g["total"] / g["count"].clip(lower=1), "last": g["last"]}[how]
                values[i, g.index.to_numpy(dtype=np.int64)] = v.to_numpy(dtype=float)
        return values, None, None
    keys = sorted({(m.spec.dimension, m.spec.value) for m in members})
    pos = {k: i for i, k in enumerate(keys)}
    needed = {KPIS[m.spec.metric].numerator for m in members} | {KPIS[m.spec.metric].denominator for m in members
                                                                 if KPIS[m.spec.metric].denominator}
    frame = selectors.kpi_frames(granularity=granularity, keys=keys, start=start, end=end, measures=sorted(needed))
    measures: dict[str, np.ndarray] = {}
    key_index = pd.MultiIndex.from_tuples(keys) if keys else None
    kpos = (key_index.get_indexer(pd.MultiIndex.from_arrays([frame["dimension"], frame["value"]]))
            if len(frame) else np.array([], np.int64))
    cols = (selectors.local_index_epoch(frame["epoch"], c, tz) - lo) if len(frame) else np.array([], np.int64)
    ok = (cols >= 0) & (cols < T)
    # every bucket from a series' first data on exists: no row means nothing happened (0), not unknown
    key_first = np.full(len(keys), np.iinfo(np.int64).max, np.int64)
    for i, m in enumerate(members):
        key_first[pos[(m.spec.dimension, m.spec.value)]] = min(key_first[pos[(m.spec.dimension, m.spec.value)]], first[i])
    known = (lo + np.arange(T))[None, :] >= key_first[:, None]
    for name in needed:
        mat = np.where(known, 0.0, np.nan)
        if ok.any():
            np.add.at(mat, (kpos[ok], cols[ok]), frame[name].to_numpy(dtype=float)[ok])
        measures[name] = mat
    num = np.full((S, T), np.nan)
    den = np.full((S, T), np.nan)
    for i, m in enumerate(members):
        kpi = KPIS[m.spec.metric]
        k = pos[(m.spec.dimension, m.spec.value)]
        n = measures[kpi.numerator][k]
        if kpi.denominator is None:
            values[i] = n
        else:
            d = measures[kpi.denominator][k]
            num[i], den[i] = n, d
            with np.errstate(invalid="ignore", divide="ignore"):
                values[i] = np.where(d > 0, n / np.where(d > 0, d, 1.0), np.nan)
    return values, num, den


def _runs(members: list[Member], c: int, tz: str, rewound: np.ndarray) -> RunState:
    runs = RunState.empty(len(members))
    rows = [i for i, m in enumerate(members)
            if not rewound[i] and m.state.run_length > 0 and m.state.run_start is not None]
    if rows:
        starts = selectors.local_index([members[i].state.run_start for i in rows], c, tz)
        for k, i in enumerate(rows):
            s = members[i].state
            runs.length[i], runs.direction[i], runs.start[i] = s.run_length, s.run_direction, starts[k]
            runs.anomaly_id[i] = s.run_anomaly_id
    ev = [i for i, m in enumerate(members) if not rewound[i] and m.state.evidence and m.state.evidence.get("len")]
    if ev:
        starts = selectors.local_index([selectors.utc_datetime(int(members[i].state.evidence["start"])) for i in ev],
                                       c, tz)
        for k, i in enumerate(ev):
            e = members[i].state.evidence
            runs.ev_direction[i], runs.ev_length[i], runs.ev_start[i] = int(e["dir"]), int(e["len"]), starts[k]
            runs.ev_sums[i] = np.array(e["sums"], dtype=float)
            runs.ev_kept[i] = bool(e.get("kept"))
    return runs


def _evidence_json(runs: RunState, r: int, start_utc: int) -> str | None:
    if runs.ev_length[r] <= 0:
        return None
    return json.dumps({"dir": int(runs.ev_direction[r]), "len": int(runs.ev_length[r]), "start": int(start_utc),
                       "sums": [float(x) for x in runs.ev_sums[r]], "kept": bool(runs.ev_kept[r])})


def _save_states(engine: GroupEngine, members: list[Member], starts: np.ndarray, g1: int, c: int, tz: str,
                 utc: np.ndarray, lo: int) -> None:
    # one UPDATE for all series (bulk_update's CASE per row is far too slow for 10,000 live series)
    evaluated = np.flatnonzero(starts <= g1)
    if evaluated.size:
        last = selectors.utc_datetime(int(utc[g1 - lo]))
        unset = np.iinfo(np.int64).min
        length = engine.runs.length[evaluated]
        run_utc = selectors.index_utc(engine.runs.start[evaluated], c, tz)
        ev_utc = selectors.index_utc(engine.runs.ev_start[evaluated], c, tz)
        with connection.cursor() as cursor:
            cursor.execute(
                """UPDATE monitoring_seriesstate s SET last_bucket = %s, updated_at = now(),
                     period = COALESCE(x.period, s.period), period_boundary = COALESCE(x.boundary, s.period_boundary),
                     run_length = x.len, run_direction = x.dir, run_start = x.rstart, run_anomaly_id = x.aid,
                     evidence = x.ev::jsonb
                   FROM unnest(%s::bigint[], %s::int[], %s::bigint[], %s::int[], %s::smallint[], %s::timestamptz[],
                               %s::bigint[], %s::text[]) AS x(id, period, boundary, len, dir, rstart, aid, ev)
                   WHERE s.id = x.id""",
                [last, [members[r].state.pk for r in evaluated],
                 [None if engine.period_boundary[r] == unset else int(engine.period[r]) for r in evaluated],
                 [None if engine.period_boundary[r] == unset else int(engine.period_boundary[r]) for r in evaluated],
                 [int(x) for x in length], [int(engine.runs.direction[r]) if length[k] else 0
                                            for k, r in enumerate(evaluated)],
                 [selectors.utc_datetime(int(run_utc[k])) if length[k] else None for k in range(evaluated.size)],
                 [engine.runs.anomaly_id[r] if length[k] else None for k, r in enumerate(evaluated)],
                 [_evidence_json(engine.runs, int(r), int(ev_utc[k])) for k, r in enumerate(evaluated)]])
    dirty = sorted(engine.prophet_dirty)
    if dirty:
        SeriesFit.objects.filter(state__in=[members[r].state for r in dirty], detector="prophet").delete()
        fits = []
        for r in dirty:
            table = engine.prophet_table.get(r)
            if table is None:
                continue
            fits.append(SeriesFit(state=members[r].state, detector="prophet", boundary=int(engine.prophet_boundary[r]),
                                  table={"start": int(engine.prophet_start[r]), "yhat": table[0].tolist(),
                                         "lower": table[1].tolist(), "upper": table[2].tolist()}))
        SeriesFit.objects.bulk_create(fits)


# ----------------------------------------------------------------------------- anomalies

def _dims(spec: SeriesSpec) -> dict[str, str]:
    return {} if spec.dimension == "total" else {spec.dimension: spec.value}


def _impact(tenant: Any, inc: Incident, spec: SeriesSpec, granularity: str, c: int, tz: str) -> dict[str, Any]:
    at = lambda idx: selectors.utc_datetime(int(selectors.index_utc([idx], c, tz)[0])).isoformat()  # noqa: E731
    impact: dict[str, Any] = {
        "granularity": granularity, "buckets": inc.buckets, "detected_bucket": at(inc.detected_index),
        "last_bucket": at(inc.last_index), "ongoing": inc.open,
        "relative_change": _finite(inc.relative_change), "expected_total": round(inc.expected_total, 6),
        "observed_total": round(inc.observed_total, 6),
    }
    if spec.kind == "money":
        delta = inc.observed_total - inc.expected_total
        impact["currency"] = tenant.currency
        impact["amount_delta"] = round(delta, 2)
        if spec.metric == "revenue" and delta < 0:
            impact["revenue_at_risk"] = round(-delta, 2)
    if inc.marks:
        impact["events"] = list(inc.marks)
    return impact


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _merge_twins(incidents: list[Incident]) -> list[Incident]:
    """Incidents of one walk with the same series, first bucket and direction are one incident (the
    later parts extend the first), so a walk never raises the same anomaly twice."""
    out: list[Incident] = []
    seen: dict[tuple[int, int, int], Incident] = {}
    for inc in incidents:
        if inc.closing_only:
            out.append(inc)
            continue
        first = seen.get((inc.row, inc.start_index, inc.direction))
        if first is None:
            seen[(inc.row, inc.start_index, inc.direction)] = inc
            out.append(inc)
            continue
        first.last_index = max(first.last_index, inc.last_index)
        first.buckets = max(first.buckets, inc.buckets)
        first.expected_total += inc.expected_total
        first.observed_total += inc.observed_total
        if inc.score > first.score:
            first.score = inc.score
        if SEVERITIES.index(inc.severity or "low") > SEVERITIES.index(first.severity or "low"):
            first.severity = inc.severity
        first.marks += [m for m in inc.marks if m not in first.marks]
        first.open = first.open or inc.open
    return out


def _write_incidents(tenant: Any, engine: GroupEngine, members: list[Member], granularity: str, c: int,
                     tz: str) -> tuple[int, int]:
    incidents = _merge_twins(engine.all_incidents())
    if not incidents:
        return 0, 0
    existing_ids = [inc.anomaly_id for inc in incidents if inc.anomaly_id is not None]
    existing = {a.pk: a for a in Anomaly.objects.filter(pk__in=existing_ids)}
    # a re-walk after late data finds incidents raised before: update them instead of raising twice
    # keyed by incident, not by series: one walk can finish several incidents of the same series (each
    # has its own first bucket; a dict by row used to date them all at the last one's and duplicate it)
    occurred = [selectors.utc_datetime(int(selectors.index_utc([inc.start_index], c, tz)[0]))
                if not inc.closing_only else None for inc in incidents]
    prior = defaultdict(list)
    for a in Anomaly.objects.filter(kind="kpi", occurred_at__in={w for w in occurred if w is not None},
                                    metric__in={members[i.row].spec.metric for i in incidents}):
        prior[(a.metric, a.occurred_at)].append(a)
    new: list[tuple[Incident, Anomaly]] = []
    changed: list[Anomaly] = []
    for inc, when in zip(incidents, occurred, strict=True):
        if inc.closing_only:
            anomaly = existing.get(inc.anomaly_id)
            if anomaly is not None:
                anomaly.impact = {**(anomaly.impact or {}), "ongoing": False}
                changed.append(anomaly)
            continue
        spec = members[inc.row].spec
        word = "up" if inc.direction > 0 else "down"
        same = [a for a in prior[(spec.metric, when)] if a.dimensions == _dims(spec) and a.direction == word
                and (a.impact or {}).get("granularity") == granularity]
        anomaly = existing.get(inc.anomaly_id) if inc.anomaly_id is not None else (same[0] if same else None)
        impact = _impact(tenant, inc, spec, granularity, c, tz)
        if anomaly is not None:
            old = anomaly.impact or {}
            if not inc.is_new and "expected_total" in old:  # totals since detection add up across runs
                impact["expected_total"] = round(old["expected_total"] + inc.expected_total, 6)
                impact["observed_total"] = round(old["observed_total"] + inc.observed_total, 6)
                impact["detected_bucket"] = old.get("detected_bucket", impact["detected_bucket"])
                impact["relative_change"] = old.get("relative_change")  # the headline stays the detection's
                if "amount_delta" in impact:
                    delta = impact["observed_total"] - impact["expected_total"]
                    impact["amount_delta"] = round(delta, 2)
                    impact.pop("revenue_at_risk", None)
                    if spec.metric == "revenue" and delta < 0:
                        impact["revenue_at_risk"] = round(-delta, 2)
                events = list(dict.fromkeys([*old.get("events", []), *impact.get("events", [])]))
                if events:
                    impact["events"] = events
            anomaly.impact = impact
            anomaly.score = max(anomaly.score, inc.score)
            if SEVERITIES.index(inc.severity or "low") > SEVERITIES.index(anomaly.severity):
                anomaly.severity = inc.severity
            changed.append(anomaly)
            inc.anomaly_id = anomaly.pk
            continue
        reasons = list(inc.reasons)
        for name in inc.marks:
            reasons.append({"detector": "calendar", "text": f"during known event '{name}'", "value": 1.0,
                            "threshold": 1.0})
        new.append((inc, Anomaly(
            kind="kpi", occurred_at=when, metric=spec.metric, dimensions=_dims(spec),
            entity=spec.value if spec.dimension in ("campaign", "product", "store") else "",
            score=float(np.clip(np.nan_to_num(inc.score), 0, 1)), severity=inc.severity or "low",
            direction="up" if inc.direction > 0 else "down", expected=_finite(inc.expected),
            observed=_finite(inc.observed), impact=impact, reasons=reasons, detectors=inc.detectors,
            root_cause=_root_cause_safe(tenant, spec, granularity, c, tz, inc, engine))))
        # the hour and the day series of one metric may both fire on the same incident: the granularity
        # in the fingerprint keeps them apart (alert grouping, snoozes)
        new[-1][1].fingerprint = f"{anomaly_fingerprint(new[-1][1])}@{granularity}"[:200]
    if changed:
        Anomaly.objects.bulk_update(changed, ["impact", "score", "severity"])
    created = anomalies_record(anomalies=[a for _, a in new])
    for (inc, _), a in zip(new, created, strict=True):
        inc.anomaly_id = a.pk
    for inc in incidents:
        if inc.open:
            engine.runs.anomaly_id[inc.row] = inc.anomaly_id
    return len(created), len(changed)


def _root_cause_safe(tenant: Any, spec: SeriesSpec, granularity: str, c: int, tz: str, inc: Incident,
                     engine: GroupEngine) -> list[dict[str, Any]]:
    if granularity == "native" or spec.metric not in KPIS:
        return []
    try:
        start = selectors.index_utc([inc.start_index], c, tz)[0]
        end = selectors.index_utc([inc.detected_index + 1], c, tz)[0]
        period = int(engine.period[inc.row]) if engine.period[inc.row] > 0 else 0
        shift = period * c if period else max(end - start, c)
        return root_cause(tenant=tenant, metric=spec.metric, granularity=granularity,
                          filters=_dims(spec), after=(start, end), before=(start - shift, end - shift))
    except Exception:  # noqa: BLE001 - an explanation failure must not lose the anomaly itself
        log.warning("root cause failed for %s", spec.key, exc_info=True)
        return []


def breakdown(*, tenant: Any, granularity: str, start: datetime, end: datetime, filters: dict[str, str],
              dimensions: list[str]) -> pd.DataFrame:
    if not filters:
        gran = granularity if granularity in ("hour", "day") else "hour"
        return selectors.breakdown_rollups(granularity=gran, start=start, end=end, dimensions=dimensions)
    return selectors.breakdown_events(tenant=tenant, start=start, end=end, filters=filters, dimensions=dimensions)


def change_breakdown(*, tenant: Any, metric: str, granularity: str, filters: dict[str, str],
                     after: tuple[datetime, datetime], before: tuple[datetime, datetime],
                     dimensions: list[str] | None = None, top: int = 5) -> dict[str, Any]:
    """Before/after values of a KPI and the ranked contributions of each dimension's values."""
    kpi = KPIS[metric]
    dims = [d for d in (dimensions or list(DIMENSIONS)) if d in DIMENSIONS and d not in filters]
    frames = [breakdown(tenant=tenant, granularity=granularity, start=s, end=e, filters=filters, dimensions=dims)
              for s, e in (before, after)]
    out: dict[str, Any] = {"by": {}}

    def total(frame: pd.DataFrame, col: str) -> float:
        return float(frame.loc[frame["dimension"] == "total", col].sum())

    for label, frame in zip(("before", "after"), frames, strict=True):
        n = total(frame, kpi.numerator)
        if kpi.denominator:
            d = total(frame, kpi.denominator)
            out[label] = n / d if d else None
        else:
            out[label] = n
    out["delta"] = (out["after"] - out["before"]) if None not in (out["before"], out["after"]) else None
    for dim in dims:
        b = frames[0][frames[0]["dimension"] == dim]
        a = frames[1][frames[1]["dimension"] == dim]
        if b.empty and a.empty:
            continue  # nothing is tracked on this dimension
        if kpi.denominator is None:
            pairs = {}
            for v in sorted(set(b["value"]) | set(a["value"])):
                pairs[str(v)] = (float(b.loc[b["value"] == v, kpi.numerator].sum()),
                                 float(a.loc[a["value"] == v, kpi.numerator].sum()))
            ranked = [x.as_dict() for x in contributions(total(frames[0], kpi.numerator),
                                                          total(frames[1], kpi.numerator), pairs)]
        else:
            pb = {str(v): (float(r[kpi.numerator]), float(r[kpi.denominator])) for v, r in
                  b.set_index("value")[[kpi.numerator, kpi.denominator]].iterrows()}
            pa = {str(v): (float(r[kpi.numerator]), float(r[kpi.denominator])) for v, r in
                  a.set_index("value")[[kpi.numerator, kpi.denominator]].iterrows()}
            ranked = [x.as_dict() for x in ratio_contributions(pb, pa)]
        out["by"][dim] = [_clean(x) for x in ranked[:top]]
    return out


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in d.items()}


def root_cause(*, tenant: Any, metric: str, granularity: str, filters: dict[str, str],
               after: tuple[int, int], before: tuple[int, int], top: int = 3) -> list[dict[str, Any]]:
    """Ranked contributors to a KPI move: per dimension its top values, dimensions ordered by how much
    of the change their leading value explains (one channel explaining 90 % comes before ten products
    explaining 10 % each)."""
    to_dt = selectors.utc_datetime
    result = change_breakdown(tenant=tenant, metric=metric, granularity=granularity, filters=filters,
                              after=(to_dt(after[0]), to_dt(after[1])), before=(to_dt(before[0]), to_dt(before[1])),
                              top=top)
    groups = []
    for dim, items in result["by"].items():
        if not items:
            continue
        lead = items[0].get("share_of_delta")
        groups.append((-(abs(lead) if lead is not None else 0.0), dim, items))
    out: list[dict[str, Any]] = []
    for _, dim, items in sorted(groups, key=lambda g: (g[0], g[1])):
        for rank, item in enumerate(items, start=1):
            out.append({"dimension": dim, "rank": rank, **item})
    return out


# ----------------------------------------------------------------------------- fits

def kpi_fit(*, tenant: Any = None, now: datetime | None = None, budget_seconds: float = 240.0) -> dict[str, int]:
    """Pre-warm Prophet tables for the current refit period of every hourly/daily/native series, so the
    evaluation of a closed bucket is a table lookup. The evaluator fits on its own when a table is
    missing (same data, same seed: same table), so this task only moves the cost off the live path."""
    import time

    from tenants.config import tenant_section
    from tenants.selectors import tenant_current

    tenant = tenant or tenant_current()
    cfg = tenant_section(tenant, "kpi")
    now = now or timezone.now()
    started = time.monotonic()
    fitted = 0
    groups = _members(tenant=tenant, cfg=cfg, granularities={"hour", "day", "native"}, rewind=None)
    for (granularity, seconds), members in sorted(groups.items()):
        members = [m for m in members if "prophet" in m.spec.detectors and m.state.last_bucket is not None]
        if not members:
            continue
        cadence = Cadence(seconds)
        tz = tenant.timezone
        refit = cfg.prophet_refit_days.get(granularity, 1)
        every = max(1, refit * 86400 // seconds)
        close = selectors.last_closed_index(now, seconds, tz, cfg.close_grace_seconds)
        boundary = ((close + 1) // every) * every
        fits = {f.state_id: f.boundary for f in SeriesFit.objects.filter(state__in=[m.state for m in members],
                                                                         detector="prophet")}
        stale = [m for m in members if fits.get(m.state.pk) != boundary]
        for chunk in range(0, len(stale), 50):
            if time.monotonic() - started > budget_seconds:
                return {"fitted": fitted, "left": len(stale) - chunk}
            part = stale[chunk:chunk + 50]
            length = prophet_history(cadence)
            lo = boundary - length
            utc = selectors.index_utc(np.arange(lo, boundary + 1), seconds, tz)
            first = _first_indexes(part, granularity, seconds, tz)
            values, num, den = _matrices(part, granularity, seconds, tz, lo, length + 1, utc, first)
            engine = GroupEngine([m.spec for m in part], cadence, lo, values, utc, numerators=num, denominators=den,
                                 prophet_refit_buckets=every)
            engine._refit_prophet(np.arange(len(part)), boundary)
            _save_states_fits_only(engine, part)
            fitted += len(part)
    return {"fitted": fitted, "left": 0}


def _save_states_fits_only(engine: GroupEngine, members: list[Member]) -> None:
    dirty = sorted(engine.prophet_dirty)
    SeriesFit.objects.filter(state__in=[members[r].state for r in dirty], detector="prophet").delete()
    SeriesFit.objects.bulk_create([
        SeriesFit(state=members[r].state, detector="prophet", boundary=int(engine.prophet_boundary[r]),
                  table={"start": int(engine.prophet_start[r]), "yhat": engine.prophet_table[r][0].tolist(),
                         "lower": engine.prophet_table[r][1].tolist(), "upper": engine.prophet_table[r][2].tolist()})
        for r in dirty if r in engine.prophet_table])


# ----------------------------------------------------------------------------- stock

def stock_check(*, tenant: Any = None, now: datetime | None = None) -> dict[str, int]:
    """Stock alerts per episode (scoring.kpi.stock.stock_episodes): an episode opens when a product
    reaches its reorder point or a stock-out is predicted and closes on the restock; within it one alert
    when stock is predicted to run out before the expected restock (reorder point reached + lead time;
    velocity: the pace at which the level falls, sales rollups as its prior), one when it is out. Crossing the reorder point alone is the normal restock cycle: it alerts
    only where the tenant configured that warning threshold itself (StockThreshold.warning)."""
    from scoring.kpi.stock import depletion_velocity, sales_velocity_per_day, stock_episodes
    from tenants.config import tenant_section
    from tenants.selectors import tenant_current

    tenant = tenant or tenant_current()
    cfg = tenant_section(tenant, "kpi")
    now = now or timezone.now()
    rows = selectors.stock_rows()
    if not rows:
        return {"products": 0, "alerts": 0}
    products = [r["product_id"] for r in rows]
    units = selectors.daily_units(products=products, end=now, days=cfg.stock_velocity_days)
    sales = sales_velocity_per_day(units, window_days=cfg.stock_velocity_days)
    level = np.array([r["level"] for r in rows], dtype=float)
    warn = np.array([r["warning"] if r["warning"] is not None else -1 for r in rows], dtype=float)
    crit = np.array([r["critical"] for r in rows], dtype=float)
    lead = np.array([r["lead_time_days"] if r["lead_time_days"] is not None else cfg.stock_lead_time_days
                     for r in rows], dtype=float)
    states = {s.product_id: s for s in StockAlertState.objects.filter(product_id__in=products, kind="episode")}
    prior = [states.get(p) or StockAlertState(product_id=p, kind="episode") for p in products]

    def naive(moment: datetime | None) -> np.datetime64:
        if moment is None:
            return np.datetime64("NaT", "s")
        return np.datetime64(moment.astimezone(UTC).replace(tzinfo=None), "s")

    # the level's own pace, the sales velocity from rollups as its prior: stock-outs are about the level,
    # and rollups may credit a product with a whole basket's units (or miss lines of it)
    level_at = [naive(r["updated_at"]) for r in rows]
    known = [s.velocity if s.velocity is not None else np.nan for s in prior]
    velocity = depletion_velocity(np.where(np.isfinite(known), known, sales),
                                  [np.nan if s.last_level is None else s.last_level for s in prior],
                                  [naive(s.level_at) for s in prior], level, level_at,
                                  window_days=cfg.stock_velocity_days)
    step = stock_episodes([s.level for s in prior], [naive(s.reorder_at) for s in prior],
                          [np.nan if s.last_level is None else s.last_level for s in prior], level, velocity, lead,
                          warning_threshold=warn, critical_threshold=crit, safety_days=cfg.stock_safety_days,
                          alert_low=[bool(r.get("warning_explicit")) for r in rows], now=naive(now),
                          level_at=level_at)
    new: list[Anomaly] = []
    touched: list[StockAlertState] = []
    for i, (r, st) in enumerate(zip(rows, prior, strict=True)):
        reorder = step.reorder_at[i]
        reorder_at = None if np.isnat(reorder) else pd.Timestamp(reorder).tz_localize("UTC").to_pydatetime()
        state = str(step.state[i])
        if (state, reorder_at, float(level[i])) == (st.level, st.reorder_at, st.last_level) and st.pk is not None:
            continue
        st.level, st.reorder_at, st.last_level, st.updated_at = state, reorder_at, float(level[i]), now
        st.level_at, st.velocity = r["updated_at"], float(velocity[i])
        touched.append(st)
        if step.alert[i]:
            new.append(_stock_anomaly(r, str(step.alert[i]), level[i], warn[i], crit[i], velocity[i],
                                      step.days_of_cover[i], step.stockout_at[i], step.restock_expected_at[i],
                                      str(step.reason[i]), lead[i], now))
    if touched:
        StockAlertState.objects.bulk_create([s for s in touched if s.pk is None])
        StockAlertState.objects.bulk_update([s for s in touched if s.pk is not None],
                                            ["level", "reorder_at", "last_level", "level_at", "velocity",
                                             "updated_at"])
    anomalies_record(anomalies=new)
    return {"products": len(rows), "alerts": len(new)}


def _stock_anomaly(row: dict[str, Any], alert: str, level: float, warn: float, crit: float, velocity: float,
                   cover: float, stockout_at: Any, restock_at: Any, reason: str, lead: float,
                   now: datetime) -> Anomaly:
    product = row["product_id"]
    cover_days = float(cover) if np.isfinite(cover) else None
    impact: dict[str, Any] = {"days_of_cover": cover_days, "velocity_per_day": round(float(velocity), 3),
                              "lead_time_days": float(lead), "level": alert}
    for key, moment in (("stockout_at", stockout_at), ("restock_expected_at", restock_at)):
        if not pd.isna(moment):
            impact[key] = pd.Timestamp(moment).tz_localize("UTC").isoformat()
    if alert in ("out", "low"):
        threshold = crit if alert == "out" else warn
        severity = ("critical" if level <= 0 else "high") if alert == "out" else "medium"
        return Anomaly(kind="stock", occurred_at=row["updated_at"], metric="stock_level", dimensions={"product": product},
                       entity=product, score=1.0 if alert == "out" else 0.75, severity=severity,
                       direction="down", expected=float(threshold), observed=float(level), impact=impact,
                       reasons=[{"detector": "stock_threshold", "text": reason, "value": float(level),
                                 "threshold": float(threshold)}], detectors={"stock_threshold": 1.0})
    # predicted: high when even a reorder placed now could not arrive in time, medium otherwise
    severity = "high" if cover_days is not None and cover_days <= lead else "medium"
    # the same metric as the level alert (it is the level's future): the detector tells them apart
    return Anomaly(kind="stock", occurred_at=now, metric="stock_level", dimensions={"product": product},
                   entity=product, score=1.0 if severity == "high" else 0.75, severity=severity,
                   direction="down", expected=float(lead), observed=cover_days, impact=impact,
                   reasons=[{"detector": "stockout_forecast", "text": reason, "value": cover_days or 0.0,
                             "threshold": float(lead)}], detectors={"stockout_forecast": 1.0})
