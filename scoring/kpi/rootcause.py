"""Root cause: which dimension values moved a KPI, and by how much.

Additive metrics (revenue, orders, clicks): each value's contribution is its own delta; share = delta /
total delta. Values are ranked by how much they pushed the total in the direction it moved (the drivers
of a drop come first, the ones that grew against the drop last); when segment sums do not add up to the
total (filtered or untracked values), the gap is reported as "(other)".

Ratio metrics (AOV, CTR, conversion, return rate) cannot be split that way: a channel can lower the
total conversion without any change in its own conversion, just by getting more of the traffic. We use
the mix/rate decomposition (a shift-share analysis):

    R = sum_i w_i r_i,  w_i = den_i / sum(den),  r_i = num_i / den_i
    dR = sum_i (w1_i - w0_i) (r0_i - R0)   [mix: traffic moved towards better/worse segments]
       + sum_i  w1_i (r1_i - r0_i)         [rate: the segment's own ratio changed]

The two terms add up exactly to R1 - R0 (a new segment takes r0 = R0, so it only has a rate effect).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

OTHER = "(other)"


@dataclass(frozen=True)
class Contribution:
    value: str
    before: float
    after: float
    delta: float
    share_of_delta: float  # delta / total delta (NaN when the total did not move)
    pct_change: float  # delta / before (NaN when before is 0)

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)


@dataclass(frozen=True)
class RatioContribution:
    value: str
    rate_before: float
    rate_after: float
    weight_before: float
    weight_after: float
    mix_effect: float
    rate_effect: float
    total_effect: float
    share_of_delta: float

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def contributions(total_before: float, total_after: float,
                  by_dimension: Mapping[str, tuple[float, float]]) -> list[Contribution]:
    """Rank dimension values of an additive metric by their contribution to the change of the total."""
    total_delta = float(total_after) - float(total_before)
    items = [(str(k), float(b), float(a)) for k, (b, a) in by_dimension.items()]
    sum_b = sum(b for _, b, _ in items)
    sum_a = sum(a for _, _, a in items)
    gap_b, gap_a = float(total_before) - sum_b, float(total_after) - sum_a
    tol = 1e-9 * max(abs(float(total_before)), abs(float(total_after)), 1.0)
    if abs(gap_b) > tol or abs(gap_a) > tol:
        items.append((OTHER, gap_b, gap_a))
    sign = 1.0 if total_delta >= 0 else -1.0
    out = [Contribution(k, b, a, a - b, _ratio(a - b, total_delta), _ratio(a - b, b)) for k, b, a in items]
    # drivers in the direction of the move first; ties broken by absolute size
    out.sort(key=lambda c: (-(c.delta * sign), -abs(c.delta)))
    return out


def ratio_contributions(before: Mapping[str, tuple[float, float]],
                        after: Mapping[str, tuple[float, float]]) -> list[RatioContribution]:
    """Mix/rate decomposition of a ratio KPI's change; input {value: (numerator, denominator)}."""
    keys = sorted(set(before) | set(after), key=str)
    n0 = np.array([before.get(k, (0.0, 0.0))[0] for k in keys], dtype=float)
    d0 = np.array([before.get(k, (0.0, 0.0))[1] for k in keys], dtype=float)
    n1 = np.array([after.get(k, (0.0, 0.0))[0] for k in keys], dtype=float)
    d1 = np.array([after.get(k, (0.0, 0.0))[1] for k in keys], dtype=float)
    R0 = n0.sum() / d0.sum() if d0.sum() else 0.0
    R1 = n1.sum() / d1.sum() if d1.sum() else 0.0
    w0 = d0 / d0.sum() if d0.sum() else np.zeros_like(d0)
    w1 = d1 / d1.sum() if d1.sum() else np.zeros_like(d1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r0 = np.where(d0 > 0, n0 / np.where(d0 > 0, d0, 1), R0)
        r1 = np.where(d1 > 0, n1 / np.where(d1 > 0, d1, 1), r0)
    mix = (w1 - w0) * (r0 - R0)
    rate = w1 * (r1 - r0)
    total = mix + rate
    delta = R1 - R0
    sign = 1.0 if delta >= 0 else -1.0
    out = [RatioContribution(str(k), float(r0[i]), float(r1[i]), float(w0[i]), float(w1[i]), float(mix[i]),
                             float(rate[i]), float(total[i]), _ratio(float(total[i]), delta))
           for i, k in enumerate(keys)]
    out.sort(key=lambda c: (-(c.total_effect * sign), -abs(c.total_effect)))
    return out


def _window_sums(frame: pd.DataFrame, time_col: str, start: object, end: object) -> pd.DataFrame:
    t = pd.to_datetime(frame[time_col])
    return frame[(t >= pd.Timestamp(start)) & (t < pd.Timestamp(end))]


def explain_change(frame: pd.DataFrame, *, time_col: str, value_col: str, dimensions: Iterable[str],
                   before: tuple[object, object], after: tuple[object, object],
                   denominator_col: str | None = None, top: int = 10) -> dict[str, object]:
    """Contribution breakdown of a metric between two windows, for several dimensions at once.

    `frame` has one row per (time bucket x dimension values) with the metric's value (and, for ratio
    metrics, the denominator). Returns {"before", "after", "delta", "by": {dim: [contributions...]}}.
    """
    b = _window_sums(frame, time_col, *before)
    a = _window_sums(frame, time_col, *after)
    result: dict[str, object] = {}
    by: dict[str, list[dict[str, float | str]]] = {}
    if denominator_col is None:
        tb, ta = float(b[value_col].sum()), float(a[value_col].sum())
        result.update(before=tb, after=ta, delta=ta - tb)
        for dim in dimensions:
            sb = b.groupby(dim, dropna=False)[value_col].sum()
            sa = a.groupby(dim, dropna=False)[value_col].sum()
            keys = sb.index.union(sa.index)
            pairs = {str(k): (float(sb.get(k, 0.0)), float(sa.get(k, 0.0))) for k in keys}
            by[dim] = [c.as_dict() for c in contributions(tb, ta, pairs)[:top]]
    else:
        nb, db = float(b[value_col].sum()), float(b[denominator_col].sum())
        na, da = float(a[value_col].sum()), float(a[denominator_col].sum())
        rb, ra = _ratio(nb, db), _ratio(na, da)
        result.update(before=rb, after=ra, delta=ra - rb)
        for dim in dimensions:
            gb = b.groupby(dim, dropna=False)[[value_col, denominator_col]].sum()
            ga = a.groupby(dim, dropna=False)[[value_col, denominator_col]].sum()
            pb = {str(k): (float(r[value_col]), float(r[denominator_col])) for k, r in gb.iterrows()}
            pa = {str(k): (float(r[value_col]), float(r[denominator_col])) for k, r in ga.iterrows()}
            by[dim] = [c.as_dict() for c in ratio_contributions(pb, pa)[:top]]
    result["by"] = by
    return result


def week_over_week(frame: pd.DataFrame, *, at: object, time_col: str, value_col: str,
                   dimensions: Iterable[str] = ("channel", "campaign", "product_id", "store_id", "country"),
                   denominator_col: str | None = None, days: int = 7, top: int = 10) -> dict[str, object]:
    """'Why did the metric change week over week': the `days` before `at` vs the same span a week earlier."""
    end = pd.Timestamp(at)
    span = pd.Timedelta(days=days)
    dims = [d for d in dimensions if d in frame.columns]
    return explain_change(frame, time_col=time_col, value_col=value_col, dimensions=dims,
                          before=(end - span - pd.Timedelta(days=7), end - pd.Timedelta(days=7)),
                          after=(end - span, end), denominator_col=denominator_col, top=top)
