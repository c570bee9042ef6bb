"""Step-by-step evaluation of many aligned KPI series (pure NumPy: no Django here).

One `GroupEngine` holds every watched series of one cadence on a common grid whose index is the
tenant's LOCAL wall-clock time divided by the cadence (so seasonal slots follow the tenant's days and
weeks), and walks closed buckets in timestamp order. At each step the bucket is scored with columns
strictly before it as history (no look-ahead), vectorised over all series that are due at that step.

Fits (the season of each series, Prophet tables, Isolation Forests) are pure functions of the data
before an epoch-aligned boundary of the grid (local midnight, local Monday midnight...), so a live run
that scores one bucket per call and a backfill that walks a year at once fit on the same data and give
the same anomalies. Fit caches are only memoisation: the caller may persist and reload them.

Incidents: a run of consecutive anomalous buckets (same direction, after direction / minimum change /
calendar filters) becomes ONE incident when it reaches `min_duration` buckets; later buckets of the
same run update it (peak severity, duration, cumulated impact) instead of raising a new one.

Evidence over runs: a small series cannot show a collapse in one bucket (6 -> 0 orders is ~2.4 sigma
under Poisson), but two hours at 0 when 12 were expected is near impossible. Each series therefore
keeps an evidence run: consecutive buckets whose primary statistic (seasonal z / binomial z) is at
least half its threshold in the same direction. The run's pooled statistic is the same test on the
run's totals: counts, the Poisson deviance of sum(observed) against sum(expected) deflated by the
series' over-dispersion; proportions, the G-test of sum(k)/sum(n) against the same slots' baseline
sum(k0)/sum(n0) deflated by the denominator-weighted over-dispersion; money and gauges (heavy
tails), a Stouffer sum of the buckets' z clipped at the threshold, so one huge order cannot carry a
run. The primary's score is the stronger of the bucket's and the run's, so consensus sees accumulated
evidence the way it sees a single extreme bucket, and an incident confirmed by a run is dated at the
run's first bucket. Requiring half the threshold per bucket keeps a slow day (every hour ~1 sd low,
correlated) from adding up to an alarm. The evidence run is carried between evaluations like the
incident run, so a live walk and a backfill pool the same buckets.

Sub-hourly counts with a seasonal rate baseline (scoring.kpi.baseline: the same hour-of-week from the
hour rollups, given by the caller): each bucket is tested against that expected rate (Poisson, deflated
by the series' over-dispersion), and a bucket below its expected rate joins a falling evidence run, so a
sparse series (0.1 orders a minute, where no single minute can be 2 sd low) pools its silence: 90 quiet
minutes when 9 orders were expected is a run with O = 0, E = 9. Under the null a run of silence reaching
an expected total e has probability exp(-e), so the run's deviance test keeps its meaning; an ordinary
slow spell is broken by the next order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scoring.kpi.base import KpiScores, threshold_score
from scoring.kpi.baseline import dispersion, poisson_z
from scoring.kpi.consensus import SEVERITIES, ConsensusConfig, combine
from scoring.kpi.forecast import ProphetResidual, fit_forecast
from scoring.kpi.iforest import IsolationForestKpi
from scoring.kpi.ratio import BinomialRatioDetector, binomial_two_sample_z
from scoring.kpi.seasonal import SeasonalRobustZ, lookback_buckets
from scoring.kpi.series import DAY, Cadence, candidate_periods, detect_periods

PRIMARY = ("seasonal_z", "ratio_binomial")
# A money series and the count whose events carry its amounts (same dimension value and cadence).
MONEY_COUNT = {"revenue": "orders", "refund_amount": "returns"}
EV_SUMS = 5
EV_CANDIDATE = 0.5  # a bucket joins an evidence run at this fraction of its threshold
KNOWN_DETECTORS = ("seasonal_z", "ratio_binomial", "prophet", "iforest")
KINDS = ("count", "money", "gauge", "proportion")


@dataclass(frozen=True)
class CalendarEntry:
    start: int  # UTC epoch seconds
    end: int
    name: str
    action: str  # mute | mark


@dataclass(frozen=True)
class SeriesSpec:
    """One concrete series and how it is judged."""

    metric: str
    dimension: str
    value: str
    granularity: str
    kind: str  # count, money, gauge, proportion
    detectors: tuple[str, ...]
    consensus: str | int = "pairwise"
    direction: str = "both"
    min_relative_change: float = 0.0
    min_duration: int = 1
    z_threshold: float = 4.0
    calendar: tuple[CalendarEntry, ...] = ()

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.metric, self.dimension, self.value, self.granularity)


def default_detectors(kind: str, granularity: str, cadence_seconds: int) -> tuple[str, ...]:
    """Minute series: the fast robust z alone (outages within minutes); hour and slower: a forecast
    confirms; daily: the Isolation Forest joins on day-level features."""
    primary = "ratio_binomial" if kind == "proportion" else "seasonal_z"
    if cadence_seconds < 3600:
        return (primary,)
    if cadence_seconds >= DAY:
        return (primary, "prophet", "iforest")
    return (primary, "prophet")


def consensus_mode(mode: str | int, detectors: Sequence[str]) -> str | int:
    if mode in ("auto", "", None):
        return 1 if len(detectors) <= 1 else "pairwise"
    if isinstance(mode, str) and mode.isdigit():
        return int(mode)
    return mode


@dataclass
class Incident:
    """An incident in progress or finished during this run (what becomes / updates one Anomaly)."""

    row: int
    start_index: int  # grid index of the run's first bucket
    detected_index: int
    last_index: int
    direction: int
    buckets: int
    score: float
    severity: str
    expected: float  # at detection
    observed: float
    relative_change: float
    detectors: dict[str, float]
    reasons: list[dict[str, Any]]
    expected_total: float
    observed_total: float
    marks: list[str] = field(default_factory=list)
    anomaly_id: int | None = None  # set when the run began in an earlier evaluation
    is_new: bool = True
    open: bool = True
    closing_only: bool = False  # the run of an anomaly raised in an earlier evaluation ended here


@dataclass
class RunState:
    """Per-series run of anomalous buckets carried between evaluation runs."""

    direction: np.ndarray  # int8
    length: np.ndarray  # int64
    start: np.ndarray  # int64 grid index (valid when length > 0)
    anomaly_id: np.ndarray  # object: int or None
    # evidence run (see the module docstring): direction, length, first grid index, pooled sums
    # (counts: observed, expected, variance; money/gauges: clipped z, buckets; proportions: k, n, k0, n0,
    # sum n*phi - see pooled_z) and whether
    # one of its buckets was already part of a confirmed run (then a new run is not back-dated)
    ev_direction: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    ev_length: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ev_start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ev_sums: np.ndarray = field(default_factory=lambda: np.zeros((0, EV_SUMS)))
    ev_kept: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    @classmethod
    def empty(cls, n: int) -> RunState:
        return cls(np.zeros(n, np.int8), np.zeros(n, np.int64), np.zeros(n, np.int64), np.full(n, None, object),
                   np.zeros(n, np.int8), np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros((n, EV_SUMS)),
                   np.zeros(n, bool))


class GroupEngine:
    """All series of one cadence, on one local-time grid [start, start + T)."""

    def __init__(self, specs: Sequence[SeriesSpec], cadence: Cadence, start: int, values: np.ndarray,
                 utc: np.ndarray, *, numerators: np.ndarray | None = None, denominators: np.ndarray | None = None,
                 history: int | None = None, prophet_refit_buckets: int | None = None,
                 seasonal: bool = True, runs: RunState | None = None,
                 baseline: np.ndarray | None = None) -> None:
        self.specs = list(specs)
        self.cadence = cadence
        self.start = int(start)
        self.values = np.asarray(values, dtype=float)
        self.utc = np.asarray(utc, dtype=np.int64)  # UTC epoch seconds of each column's bucket start
        self.num = numerators
        self.den = denominators
        # expected count per bucket from a seasonal rate baseline (count series, NaN: none; see above)
        self.baseline = None if baseline is None else np.asarray(baseline, dtype=float)
        S = len(self.specs)
        self.history = history or history_buckets(cadence)
        self.seasonal = seasonal
        self.prophet_every = prophet_refit_buckets or max(1, DAY // cadence.seconds)
        self.iforest_every = max(1, 7 * DAY // cadence.seconds)
        self.kind = np.array([s.kind for s in self.specs], dtype=object)
        self.has = {d: np.array([d in s.detectors for s in self.specs], dtype=bool) for d in KNOWN_DETECTORS}
        self.period = np.full(S, -1, np.int64)
        self.period_boundary = np.full(S, np.iinfo(np.int64).min, np.int64)
        # Prophet tables: start index, boundary and (yhat, lower, upper) rows padded to a common horizon
        self.prophet_boundary = np.full(S, np.iinfo(np.int64).min, np.int64)
        self.prophet_start = np.zeros(S, np.int64)
        self.prophet_table: dict[int, np.ndarray] = {}  # row -> 3 x H
        self.prophet_dirty: set[int] = set()
        self.iforest: dict[int, tuple[int, IsolationForestKpi]] = {}
        self.runs = runs or RunState.empty(S)
        self.incidents: dict[int, Incident] = {}
        self.finished: list[Incident] = []
        self.evaluated = 0
        self._mute_rows = [self._scope_rows(e) for e in self._events()]
        where = {(sp.metric, sp.dimension, sp.value): i for i, sp in enumerate(self.specs)}
        self.count_row = np.array([where.get((MONEY_COUNT.get(sp.metric, ""), sp.dimension, sp.value), -1)
                                   for sp in self.specs], dtype=np.int64)

    # ------------------------------------------------------------------ caches given by the caller
    def set_period(self, row: int, period: int, boundary: int) -> None:
        self.period[row], self.period_boundary[row] = period, boundary

    def set_prophet(self, row: int, boundary: int, start: int, table: np.ndarray) -> None:
        self.prophet_boundary[row], self.prophet_start[row] = boundary, start
        self.prophet_table[row] = np.asarray(table, dtype=float).reshape(3, -1)

    def column(self, index: int) -> int:
        return index - self.start

    # ------------------------------------------------------------------ windows
    def _window(self, matrix: np.ndarray, rows: np.ndarray, end_col: int, length: int) -> np.ndarray:
        """Columns [end_col - length, end_col) of `rows`, NaN-padded on the left before the grid start."""
        lo = end_col - length
        if lo >= 0:
            return matrix[rows, lo:end_col]
        out = np.full((rows.size, length), np.nan)
        if end_col > 0:
            out[:, -end_col:] = matrix[rows, :end_col]
        return out

    # ------------------------------------------------------------------ fits
    def _refit_seasons(self, rows: np.ndarray, index: int) -> None:
        if not self.seasonal:
            self.period[rows] = 0
            return
        per_day = self.cadence.per_day
        boundary = (index // per_day) * per_day
        need = rows[self.period_boundary[rows] != boundary]
        if need.size == 0:
            return
        col = self.column(boundary)
        hist = self._window(self.values, need, col, self.history)
        self.period[need] = detect_periods(hist, candidate_periods(self.cadence), min_cycles=3)
        self.period_boundary[need] = boundary

    def _times(self, first: int, n: int) -> np.ndarray:
        """Local wall-clock times of grid indexes (what the pure detectors expect)."""
        return ((first + np.arange(n)) * self.cadence.seconds).astype("datetime64[s]")

    def _refit_prophet(self, rows: np.ndarray, index: int) -> None:
        every = self.prophet_every
        boundary = (index // every) * every
        for r in rows[self.has["prophet"][rows] & (self.prophet_boundary[rows] != boundary)]:
            col = self.column(boundary)
            length = prophet_history(self.cadence)
            y = self._window(self.values, np.array([r]), col, length)[0]
            first = boundary - length
            ok = np.isfinite(y)
            self.prophet_boundary[r] = boundary
            self.prophet_table.pop(int(r), None)
            self.prophet_dirty.add(int(r))
            if ok.sum() < max(14, 2 * self.cadence.per_day):
                continue
            last = first + int(np.flatnonzero(ok)[-1])
            horizon = boundary + every - last
            kind = {"proportion": "gauge"}.get(self.kind[r], self.kind[r])
            try:
                table = fit_forecast(self._times(first, length)[ok], y[ok], horizon=horizon, cadence=self.cadence,
                                     interval_width=0.99, kind=kind)
            except Exception:  # noqa: BLE001 - a failed fit abstains, like ProphetResidual.fit
                continue
            self.set_prophet(int(r), boundary, last + 1, table[["yhat", "yhat_lower", "yhat_upper"]].to_numpy().T)

    def _iforest_model(self, r: int, index: int) -> IsolationForestKpi | None:
        boundary = (index // self.iforest_every) * self.iforest_every
        cached = self.iforest.get(r)
        if cached is not None and cached[0] == boundary:
            return cached[1]
        length = prophet_history(self.cadence)
        y = self._window(self.values, np.array([r]), self.column(boundary), length)[0]
        ok = np.isfinite(y)
        model = IsolationForestKpi(cadence=self.cadence, kind={"proportion": "gauge"}.get(self.kind[r], self.kind[r]))
        if ok.sum() >= 2:
            model.fit(self._times(boundary - length, length)[ok], y[ok])
        self.iforest[r] = (boundary, model)
        return model

    # ------------------------------------------------------------------ scoring one bucket
    def score(self, rows: np.ndarray, index: int) -> dict[str, KpiScores]:
        """Every enabled detector's scores for the bucket `index` of `rows` (NaN = not enabled / abstains)."""
        col = self.column(index)
        n = rows.size
        L = self.history
        self._refit_seasons(rows, index)
        self._refit_prophet(rows, index)
        observed = self.values[rows, col]
        out: dict[str, KpiScores] = {}
        periods = self.period[rows]

        z = KpiScores.empty("seasonal_z", n, 4.0, observed=observed)
        sz = rows[self.has["seasonal_z"][rows]]
        if sz.size:
            pos = np.flatnonzero(self.has["seasonal_z"][rows])
            matrix = np.concatenate([self._window(self.values, sz, col, L), self.values[sz, col:col + 1]], axis=1)
            kinds = self.kind[sz]
            thresholds = np.array([self.specs[i].z_threshold for i in sz])
            for kind in np.unique(kinds):
                for thr in np.unique(thresholds[kinds == kind]):
                    m = (kinds == kind) & (thresholds == thr)
                    det = SeasonalRobustZ(kind="gauge" if kind == "proportion" else str(kind), z_threshold=float(thr))
                    _put(z, pos[m], det.score_latest(matrix[m], self.cadence, periods=periods[pos[m]]))
            out["seasonal_z"] = z
            if self.baseline is not None:
                self._score_baseline(z, rows, col)

        rb = rows[self.has["ratio_binomial"][rows]]
        if rb.size and self.num is not None and self.den is not None:
            res = KpiScores.empty("ratio_binomial", n, 4.0, observed=observed)
            pos = np.flatnonzero(self.has["ratio_binomial"][rows])
            num = np.concatenate([self._window(self.num, rb, col, L), self.num[rb, col:col + 1]], axis=1)
            den = np.concatenate([self._window(self.den, rb, col, L), self.den[rb, col:col + 1]], axis=1)
            thresholds = np.array([self.specs[i].z_threshold for i in rb])
            for thr in np.unique(thresholds):
                m = thresholds == thr
                binomial = BinomialRatioDetector(z_threshold=float(thr))
                _put(res, pos[m], binomial.score_latest(num[m], den[m], self.cadence, periods=periods[pos[m]]))
            out["ratio_binomial"] = res

        pr = np.flatnonzero(self.has["prophet"][rows])
        if pr.size:
            yhat, lo, hi = (np.full(n, np.nan) for _ in range(3))
            for p in pr:
                table = self.prophet_table.get(int(rows[p]))
                if table is None:
                    continue
                k = index - int(self.prophet_start[rows[p]])
                if 0 <= k < table.shape[1]:
                    yhat[p], lo[p], hi[p] = table[:, k]
            res = ProphetResidual().score_batch(observed, yhat, lo, hi)
            res.score = np.where(self.has["prophet"][rows], res.score, np.nan)
            out["prophet"] = res

        fo = np.flatnonzero(self.has["iforest"][rows])
        if fo.size:
            res = KpiScores.empty("iforest", n, 1.2, "if", observed=observed)
            for p in fo:
                r = int(rows[p])
                model = self._iforest_model(r, index)
                if model is None or model.model is None:
                    continue
                length = 29 * self.cadence.per_day + 1
                hist = self._window(self.values, np.array([r]), col, length)[0]
                ok = np.isfinite(hist)
                one = model.score(self._times(index - length, length)[ok], hist[ok], self._times(index, 1),
                                  observed[p:p + 1])
                _put(res, np.array([p]), one)
            out["iforest"] = res
        return out

    def _score_baseline(self, z: KpiScores, rows: np.ndarray, col: int) -> None:
        """Count rows with a seasonal rate baseline: expected = that rate, Poisson z deflated by the
        dispersion of the series' recent buckets (replaces the rolling median, 0 on sparse series)."""
        e = self.baseline[rows, col]
        use = np.isfinite(e) & (self.kind[rows] == "count") & self.has["seasonal_z"][rows]
        if not use.any():
            return
        pos, ur = np.flatnonzero(use), rows[use]
        phi = dispersion(self._window(self.values, ur, col, self.history))
        thr = np.array([self.specs[i].z_threshold for i in ur], dtype=float)
        stat = poisson_z(z.observed[pos], e[use], phi)
        sd = np.sqrt(np.fmax(e[use], 1e-9) * phi)
        z.expected[pos], z.stat[pos], z.score[pos] = e[use], stat, threshold_score(stat / thr, 1.0)
        z.lower[pos], z.upper[pos] = np.fmax(e[use] - thr * sd, 0.0), e[use] + thr * sd
        z.extra["sd"][pos] = sd
        z.extra.setdefault("baseline", np.full(z.score.shape, np.nan))[pos] = 1.0

    # ------------------------------------------------------------------ one step: score, consensus, incidents
    def step(self, rows: np.ndarray, index: int) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return
        col = self.column(index)
        scores = self.score(rows, index)
        self.evaluated += rows.size
        n = rows.size
        confirmed = np.zeros(n, bool)
        score = np.full(n, np.nan)
        expected = np.full(n, np.nan)
        severity = np.full(n, "", dtype=object)
        rel = np.full(n, np.nan)
        direction = np.zeros(n, np.int8)
        pooled = self._accumulate(rows, index, scores)
        # Decisive rule (scoring.kpi.consensus): the primary confirms alone at 2x its threshold (one bucket
        # or pooled over a run) when its statistic rests on an exact sampling model: Poisson counts and
        # binomial proportions, over-dispersion measured on history. Money and gauges never confirm alone:
        # heavy tails (one large order) make their extremes common, so the forecast must agree.
        exact = np.isin(self.kind[rows], ("count", "proportion"))
        modes = [consensus_mode(self.specs[r].consensus, self.specs[r].detectors) for r in rows]
        results = {}
        for mode in sorted(set(map(str, modes))):
            m = np.array([str(x) == mode for x in modes])
            sub = {name: _take(s, m) for name, s in scores.items()}
            res = combine(sub, ConsensusConfig(mode=int(mode) if mode.isdigit() else mode, decisive=PRIMARY),
                          decisive_ok=exact[m])
            # The primary detector (seasonal z / binomial ratio) models this series' own noise; the forecast
            # and the forest are confirmations. Requiring the primary among the votes keeps two
            # confirmers agreeing on a thin, noisy series from raising an alarm on their own.
            prim = np.full(int(m.sum()), np.nan)
            for name in PRIMARY:
                if name in sub:
                    prim = np.where(np.isfinite(sub[name].score), sub[name].score, prim)
            anchored = np.where(np.isfinite(prim), prim >= 0.5, True)
            confirmed[m] = res.confirmed & anchored
            score[m], expected[m], severity[m] = res.score, res.expected, res.severity
            rel[m], direction[m] = res.relative_change, res.direction
            results[mode] = (m, res)
        confirmed &= ~self._single_order_rise(rows, scores, direction)
        observed = self.values[rows, col]
        keep = confirmed.copy()
        want = np.array([{"both": 0, "up": 1, "down": -1}[self.specs[r].direction] for r in rows])
        keep &= (want == 0) | (direction == want)
        min_rel = np.array([self.specs[r].min_relative_change for r in rows])
        keep &= np.abs(np.nan_to_num(rel, nan=0.0)) >= min_rel
        t_utc = int(self.utc[col])
        muted = np.zeros(n, bool)
        marks: dict[int, list[str]] = {}
        for event, scope in zip(self._events(), self._mute_rows, strict=True):
            if not event.start <= t_utc < event.end:
                continue
            hit = scope[rows]
            if event.action == "mute":
                muted |= hit
            else:
                for p in np.flatnonzero(hit):
                    marks.setdefault(int(p), []).append(event.name)
        keep &= ~muted
        self._track(rows, index, keep, direction, score, severity, expected, observed, rel, scores, marks, pooled)

    def _single_order_rise(self, rows: np.ndarray, scores: dict[str, KpiScores], direction: np.ndarray) -> np.ndarray:
        """Rises of a money series (revenue) whose count series (orders), scored in the same step, did not
        rise with it: not even half its threshold. The amount then comes from a few large orders, which
        a heavy-tailed sum produces routinely (and transaction scoring judges one by one), not from more
        buying. Where the count is not watched, nothing is dropped."""
        out = np.zeros(rows.size, bool)
        partner = self.count_row[rows]
        s = scores.get("seasonal_z")
        if s is None or not (partner >= 0).any():
            return out
        pos = {int(r): p for p, r in enumerate(rows)}
        for p in np.flatnonzero((partner >= 0) & (direction > 0)):
            q = pos.get(int(partner[p]))
            if q is None or not np.isfinite(s.stat[q]):
                continue
            out[p] = s.stat[q] < EV_CANDIDATE * self.specs[int(partner[p])].z_threshold
        return out

    def _accumulate(self, rows: np.ndarray, index: int, scores: dict[str, KpiScores]) -> np.ndarray:
        """Update the evidence runs with this bucket and lift the primary detector's score to the run's
        pooled statistic where that is stronger. Returns the pooled signed z (NaN: no run of 2+)."""
        n = rows.size
        R = self.runs
        z = np.full(n, np.nan)
        contrib = np.full((n, EV_SUMS), np.nan)
        mode = np.zeros(n, np.int8)  # 0 gaussian sum, 1 Poisson counts, 2 binomial proportions
        col = self.column(index)
        s = scores.get("seasonal_z")
        if s is not None and "sd" in s.extra:
            # a proportion judged by the binomial test pools binomial sums only (never mixed units)
            m = np.isfinite(s.stat) & np.isfinite(s.extra["sd"]) & ~self.has["ratio_binomial"][rows]
            count = self.kind[rows] == "count"
            thr_z = np.array([self.specs[r].z_threshold for r in rows], dtype=float)
            # counts: Poisson totals; money / gauges: Stouffer of z clipped at the threshold, because
            # their tails are heavy (one large order) and one bucket must not carry a run's evidence
            a = np.where(count, np.fmax(s.observed, 0.0), np.clip(s.stat, -thr_z, thr_z))
            b = np.where(count, np.fmax(s.expected, 1.0), 1.0)  # the detector's own Poisson floor
            # with a rate baseline, the run's totals are tested without the one-bucket floor
            based = np.isfinite(s.extra["baseline"]) if "baseline" in s.extra else np.zeros(n, bool)
            b = np.where(based, s.expected, b)
            c = np.where(count, s.extra["sd"] ** 2, 0.0)
            both = np.stack([a, b, c, np.zeros(n), np.zeros(n)], axis=1)
            z[m], contrib[m], mode[m] = s.stat[m], both[m], np.where(based & count, 3, np.where(count, 1, 0))[m]
        s = scores.get("ratio_binomial")
        if s is not None and "k0" in s.extra and self.num is not None and self.den is not None:
            m = np.isfinite(s.stat)
            k, d = self.num[rows, col], self.den[rows, col]
            both = np.stack([k, d, s.extra["k0"], s.extra["n0"], d * s.extra["phi"]], axis=1)
            m &= np.isfinite(both).all(axis=1)
            z[m], contrib[m], mode[m] = s.stat[m], both[m], 2
        thr = np.array([self.specs[r].z_threshold for r in rows], dtype=float)
        sign = np.sign(np.nan_to_num(z)).astype(np.int8)
        cand = np.isfinite(z) & (np.abs(np.nan_to_num(z)) >= EV_CANDIDATE * thr) & (sign != 0)
        s = scores.get("seasonal_z")
        if s is not None and "baseline" in s.extra:
            # below the seasonal rate: joins a falling run (a silent minute of a sparse series)
            deficit = np.isfinite(s.extra["baseline"]) & (mode == 3) & (s.observed < s.expected)
            cand |= deficit
            sign = np.where(deficit, -1, sign).astype(np.int8)
        extend = cand & (R.ev_length[rows] > 0) & (R.ev_direction[rows] == sign)
        fresh = cand & ~extend
        ext, new, off = rows[extend], rows[fresh], rows[~cand]
        R.ev_sums[ext] += contrib[extend]
        R.ev_length[ext] += 1
        R.ev_sums[new] = contrib[fresh]
        R.ev_length[new], R.ev_start[new], R.ev_direction[new], R.ev_kept[new] = 1, index, sign[fresh], False
        R.ev_sums[off], R.ev_length[off], R.ev_direction[off], R.ev_kept[off] = 0.0, 0, 0, False
        pooled = np.full(n, np.nan)
        multi = extend  # a run of 2+ buckets including this one
        if multi.any():
            pooled[multi] = pooled_z(R.ev_sums[rows[multi]], mode[multi])
        stronger = multi & np.isfinite(pooled) & (np.abs(np.nan_to_num(pooled)) > np.abs(np.nan_to_num(z))) \
            & (np.sign(np.nan_to_num(pooled)) == sign)
        if stronger.any():
            for name, m in (("seasonal_z", stronger & (mode != 2)), ("ratio_binomial", stronger & (mode == 2))):
                s = scores.get(name)
                if s is not None and m.any():
                    s.score = np.where(m, threshold_score(pooled / thr, 1.0), s.score)
        return np.where(stronger, pooled, np.nan)

    def _events(self) -> list[CalendarEntry]:
        seen: dict[CalendarEntry, None] = {}
        for s in self.specs:
            for e in s.calendar:
                seen.setdefault(e, None)
        return list(seen)

    def _scope_rows(self, event: CalendarEntry) -> np.ndarray:
        return np.array([event in s.calendar for s in self.specs], dtype=bool)

    def _track(self, rows: np.ndarray, index: int, keep: np.ndarray, direction: np.ndarray, score: np.ndarray,
               severity: np.ndarray, expected: np.ndarray, observed: np.ndarray, rel: np.ndarray,
               scores: dict[str, KpiScores], marks: dict[int, list[str]], pooled: np.ndarray) -> None:
        R = self.runs
        cont = keep & (R.length[rows] > 0) & (R.direction[rows] == direction)
        # runs that end here: close them
        ending = (R.length[rows] > 0) & ~cont
        for p in np.flatnonzero(ending):
            self._close(int(rows[p]))
        starts = keep & ~cont
        # a run confirmed by pooled evidence began at the evidence run's first bucket (unless part of
        # that evidence run already belonged to an earlier incident)
        back = starts & np.isfinite(pooled) & (R.ev_direction[rows] == direction) & ~R.ev_kept[rows]
        R.length[rows[starts]] = 0
        R.start[rows[starts]] = index
        R.length[rows[back]] = R.ev_length[rows[back]] - 1
        R.start[rows[back]] = R.ev_start[rows[back]]
        R.direction[rows[starts]] = direction[starts]
        R.anomaly_id[rows[starts]] = None
        R.length[rows[keep]] += 1
        R.ev_kept[rows[keep & (R.ev_length[rows] > 0)]] = True
        for p in np.flatnonzero(keep):
            r = int(rows[p])
            spec = self.specs[r]
            length = int(R.length[r])
            if length < spec.min_duration:
                continue
            inc = self.incidents.get(r)
            exp, obs = float(expected[p]), float(observed[p])
            if inc is None:
                inc = Incident(row=r, start_index=int(R.start[r]), detected_index=index, last_index=index,
                               direction=int(direction[p]), buckets=length, score=float(score[p]),
                               severity=str(severity[p]), expected=exp, observed=obs,
                               relative_change=float(rel[p]),
                               detectors={k: float(s.score[p]) for k, s in scores.items() if np.isfinite(s.score[p])},
                               reasons=[x.as_dict() for s in scores.values()
                                        if np.isfinite(s.score[p]) and s.score[p] >= 0.5 for x in s.reasons(int(p))]
                               + self._pooled_reason(r, int(p), pooled),
                               expected_total=0.0, observed_total=0.0)
                if R.anomaly_id[r] is not None:  # the run began in an earlier evaluation: update that anomaly
                    inc.anomaly_id, inc.is_new = int(R.anomaly_id[r]), False
                self.incidents[r] = inc
            else:
                inc.last_index, inc.buckets = index, length
                if score[p] > inc.score:
                    inc.score = float(score[p])
                if SEVERITIES.index(str(severity[p]) or "low") > SEVERITIES.index(inc.severity or "low"):
                    inc.severity = str(severity[p])
            if np.isfinite(exp) and np.isfinite(obs):
                inc.expected_total += exp
                inc.observed_total += obs
            for name in marks.get(int(p), []):
                if name not in inc.marks:
                    inc.marks.append(name)

    def _pooled_reason(self, r: int, p: int, pooled: np.ndarray) -> list[dict[str, Any]]:
        if not np.isfinite(pooled[p]):
            return []
        R = self.runs
        name = "ratio_binomial" if self.has["ratio_binomial"][r] else "seasonal_z"
        sums = R.ev_sums[r]
        if name == "ratio_binomial":
            what = (f"{sums[0]:.4g}/{sums[1]:.4g} = {sums[0] / max(sums[1], 1e-12):.4g} "
                    f"vs baseline {sums[2] / max(sums[3], 1e-12):.4g}")
        elif self.kind[r] == "count":
            what = f"observed total {sums[0]:.4g} vs expected {sums[1]:.4g}"
        else:
            what = "each at least half the threshold"
        text = f"{int(R.ev_length[r])} consecutive buckets: {what} (pooled z={pooled[p]:.2f})"
        return [{"detector": name, "text": text, "value": float(pooled[p]),
                 "threshold": float(self.specs[r].z_threshold)}]

    def _close(self, r: int) -> None:
        inc = self.incidents.pop(r, None)
        R = self.runs
        if inc is not None:
            inc.open = False
            self.finished.append(inc)
        elif R.anomaly_id[r] is not None:
            self.finished.append(Incident(row=r, start_index=int(R.start[r]), detected_index=-1, last_index=-1,
                                          direction=int(R.direction[r]), buckets=int(R.length[r]), score=0.0,
                                          severity="", expected=np.nan, observed=np.nan, relative_change=np.nan,
                                          detectors={}, reasons=[], expected_total=0.0, observed_total=0.0,
                                          anomaly_id=int(R.anomaly_id[r]), is_new=False, open=False,
                                          closing_only=True))
        R.length[r], R.direction[r], R.anomaly_id[r] = 0, 0, None

    def all_incidents(self) -> list[Incident]:
        """Incidents touched in this run: finished ones and runs still open at its end."""
        return self.finished + list(self.incidents.values())


def history_buckets(cadence: Cadence) -> int:
    """History columns a step reads: five weeks for hours (seasonal slots), eight weeks of days, and for
    sub-hourly cadences a short rolling window (minute series catch outages; seasonality is the hour
    series' job), which keeps 10,000 live minute series within one small read."""
    if cadence.seconds < 3600:
        return 168
    return lookback_buckets(cadence)


def prophet_history(cadence: Cadence) -> int:
    """History a Prophet / forest fit reads: five weeks of sub-daily buckets, a year of days."""
    if cadence.seconds >= DAY:
        return 365
    return lookback_buckets(cadence)


def pooled_z(sums: np.ndarray, mode: np.ndarray) -> np.ndarray:
    """Signed z of a run's pooled sums (rows of EV_SUMS) - the per-bucket tests applied to totals.

    mode 0: (sum of z clipped at the threshold, buckets) -> Stouffer sum / sqrt(buckets)
    mode 1: Poisson counts -> deviance of O against E deflated by the over-dispersion V / E (>= 1)
    mode 2: proportions (k, n, k0, n0, sum n*phi) -> G-test z of k/n against k0/n0 deflated by the
            denominator-weighted over-dispersion sum(n*phi) / n (>= 1)
    mode 3: counts against a seasonal rate baseline (O, E, V) -> exact quasi-Poisson tail z
            (scoring.kpi.baseline.poisson_z), the run's totals being small
    """
    sums = np.atleast_2d(np.asarray(sums, dtype=float))
    mode = np.asarray(mode)
    a, b, c, d, e = sums.T
    out = np.full(sums.shape[0], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = mode == 0
        out[g] = np.where(b[g] > 0, a[g] / np.sqrt(np.where(b[g] > 0, b[g], 1.0)), np.nan)
        p = mode == 1
        obs, exp = np.fmax(a[p], 0.0), np.fmax(b[p], 1e-9)
        dev = 2.0 * (np.where(obs > 0, obs * np.log(np.where(obs > 0, obs, 1.0) / exp), 0.0) - (obs - exp))
        phi = np.fmax(1.0, c[p] / exp)
        out[p] = np.sign(obs - exp) * np.sqrt(np.fmax(dev, 0.0) / phi)
        q = mode == 2
        phi = np.fmax(1.0, e[q] / np.where(b[q] > 0, b[q], 1.0))
        out[q] = binomial_two_sample_z(a[q], b[q], c[q], d[q]) / np.sqrt(phi)
        x = mode == 3
        if x.any():
            out[x] = poisson_z(a[x], b[x], np.fmax(1.0, c[x] / np.fmax(b[x], 1e-9)))
    return out


def _put(dst: KpiScores, pos: np.ndarray, src: KpiScores) -> None:
    for name in ("observed", "score", "expected", "lower", "upper", "stat"):
        getattr(dst, name)[pos] = getattr(src, name)
    for name, arr in src.extra.items():
        if name not in dst.extra:
            dst.extra[name] = np.full(dst.score.shape, np.nan)
        dst.extra[name][pos] = arr
    dst.threshold = src.threshold
    dst.unit = src.unit


def _take(s: KpiScores, mask: np.ndarray) -> KpiScores:
    return KpiScores(s.detector, s.observed[mask], s.score[mask], s.expected[mask], s.lower[mask], s.upper[mask],
                     s.stat[mask], s.threshold, s.unit, {})
