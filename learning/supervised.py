"""A supervised fraud model learnt from labels, stored as plain arrays (no pickle), plus the honest
training-set construction (label delay) and the champion/challenger evaluation. No Django.

Model: scikit-learn's HistGradientBoostingClassifier on the numeric features of the contract plus
target-encoded context columns (store, channel, payment method, country...). Target encoding is
what lets labels teach patterns the unsupervised detectors cannot see: a compromised store whose
fraudulent payments look like everyone else's only differs by its chargeback rate. The encoding
is learnt out-of-fold on the training rows (so the trees never see a row's own label through its
category's rate) and in full for serving, smoothed toward the overall rate so a category with
three labels cannot look 100 % fraudulent.

Serving never imports scikit-learn: the fitted trees are exported once to flat arrays (feature,
threshold, children, leaf value, NaN direction) and walked for all rows x trees at once, like
`scoring.detectors.iforest`. The result equals sklearn's `predict_proba` (tested to 1e-9).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scoring.detectors.base import Frame, Reason, Scores, fmt, matrix
from scoring.features import DETECTOR_FEATURES, label

DEFAULT_NUMERIC: tuple[str, ...] = (*DETECTOR_FEATURES, "amount_tenant", "cust_tenure_s", "cust_return_rate",
                                    "cust_history_n")
# Context columns: not in the enrichment's feature contract (store_id) or categorical. The scoring
# frame must carry them for the model to use them; a missing column encodes as the overall rate.
DEFAULT_CATEGORICAL: tuple[str, ...] = ("store_id", "channel", "payment_method", "country", "status")


def _str_column(frame: Frame, name: str, n: int) -> np.ndarray:
    if name not in frame:
        return np.full(n, "", dtype=object)
    col = np.asarray(frame[name], dtype=object)
    return np.array(["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in col], dtype=object)


def _n_rows(frame: Frame) -> int:
    for v in frame.values():
        return len(v)
    return 0


class TargetEncoder:
    """Category -> smoothed fraud rate: (positives + m * prior) / (count + m)."""

    def __init__(self, columns: Sequence[str], smoothing: float = 20.0) -> None:
        self.columns = tuple(columns)
        self.smoothing = float(smoothing)
        self.prior = 0.0
        self.keys: dict[str, np.ndarray] = {}
        self.values: dict[str, np.ndarray] = {}

    @staticmethod
    def _table(cat: np.ndarray, y: np.ndarray, prior: float, m: float) -> tuple[np.ndarray, np.ndarray]:
        keys, inv = np.unique(cat.astype(str), return_inverse=True)
        pos = np.bincount(inv, weights=y, minlength=keys.size)
        cnt = np.bincount(inv, minlength=keys.size)
        return keys, (pos + m * prior) / (cnt + m)

    def fit(self, cats: Mapping[str, np.ndarray], y: np.ndarray) -> TargetEncoder:
        y = np.asarray(y, dtype=np.float64)
        self.prior = float(y.mean()) if y.size else 0.0
        for c in self.columns:
            self.keys[c], self.values[c] = self._table(cats[c], y, self.prior, self.smoothing)
        return self

    def transform(self, cats: Mapping[str, np.ndarray]) -> np.ndarray:
        out = []
        for c in self.columns:
            keys, vals = self.keys[c], self.values[c]
            v = cats[c].astype(str)
            if keys.size == 0:
                out.append(np.full(v.size, self.prior))
                continue
            i = np.clip(np.searchsorted(keys, v), 0, keys.size - 1)
            out.append(np.where(keys[i] == v, vals[i], self.prior))
        return np.column_stack(out) if out else np.empty((0, 0))

    def fit_transform_oof(self, cats: Mapping[str, np.ndarray], y: np.ndarray, folds: int = 5,
                          seed: int = 0) -> np.ndarray:
        """Out-of-fold encodings for the training rows; fits the full encoder for serving."""
        y = np.asarray(y, dtype=np.float64)
        n = y.size
        fold = np.random.default_rng(seed).integers(0, folds, n)
        out = np.empty((n, len(self.columns)))
        for k in range(folds):
            tr, te = fold != k, fold == k
            if not te.any():
                continue
            sub = TargetEncoder(self.columns, self.smoothing).fit({c: cats[c][tr] for c in self.columns}, y[tr])
            out[te] = sub.transform({c: cats[c][te] for c in self.columns})
        self.fit(cats, y)
        return out


class GradientBoostingDetector:
    """Supervised detector: fraud probability from labelled history."""

    name = "supervised_gbm"

    def __init__(self, numeric: Sequence[str] = DEFAULT_NUMERIC, categorical: Sequence[str] = DEFAULT_CATEGORICAL,
                 *, max_iter: int = 200, learning_rate: float = 0.1, max_leaf_nodes: int = 15,
                 l2_regularization: float = 1.0, smoothing: float = 20.0, seed: int = 0) -> None:
        self.numeric = tuple(numeric)
        self.categorical = tuple(categorical)
        self.features = (*self.numeric, *self.categorical)
        self.params = {"max_iter": int(max_iter), "learning_rate": float(learning_rate),
                       "max_leaf_nodes": int(max_leaf_nodes), "l2_regularization": float(l2_regularization)}
        self.smoothing = float(smoothing)
        self.seed = int(seed)
        self.encoder = TargetEncoder(self.categorical, smoothing)
        self._a: dict[str, np.ndarray] = {}

    # -- training --------------------------------------------------------------------------------

    def _cats(self, frame: Frame) -> dict[str, np.ndarray]:
        n = _n_rows(frame)
        return {c: _str_column(frame, c, n) for c in self.categorical}

    def fit(self, frame: Frame, labels: Any = None) -> GradientBoostingDetector:
        from sklearn.ensemble import HistGradientBoostingClassifier  # training only

        if labels is None:
            raise ValueError(f"{self.name} needs labels to fit")
        y = np.asarray(labels).astype(np.int64)
        if y.min(initial=1) == y.max(initial=0):
            raise ValueError(f"{self.name} needs both classes among the labels")
        x_num = matrix(frame, self.numeric)
        x_cat = self.encoder.fit_transform_oof(self._cats(frame), y, seed=self.seed)
        x = np.column_stack([x_num, x_cat]) if x_cat.size else x_num
        model = HistGradientBoostingClassifier(random_state=self.seed, **self.params).fit(x, y)
        self._a = export_hgb(model)
        self._a["num_median"] = np.median(x_num, axis=0) if len(x_num) else np.zeros(len(self.numeric))
        self._store_encoder()
        return self

    def _store_encoder(self) -> None:
        for i, c in enumerate(self.categorical):
            keys = self.encoder.keys[c]
            # Unicode arrays (not object) so that np.load(allow_pickle=False) can read them.
            self._a[f"enc{i}_keys"] = keys.astype(str) if keys.size else np.array([], dtype="<U1")
            self._a[f"enc{i}_values"] = np.asarray(self.encoder.values[c], dtype=np.float64)
        self._a["enc_prior"] = np.asarray(self.encoder.prior, dtype=np.float64)

    # -- state -----------------------------------------------------------------------------------

    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self._check()
        return dict(self._a), {"numeric": list(self.numeric), "categorical": list(self.categorical),
                               "smoothing": self.smoothing, "seed": self.seed, **self.params}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], params: dict[str, Any]) -> GradientBoostingDetector:
        p = dict(params)
        det = cls(p.pop("numeric"), p.pop("categorical"), smoothing=p.pop("smoothing"), seed=p.pop("seed"), **p)
        det._a = {k: np.asarray(v) for k, v in arrays.items()}
        det.encoder.prior = float(det._a["enc_prior"])
        for i, c in enumerate(det.categorical):
            det.encoder.keys[c] = det._a[f"enc{i}_keys"].astype(str)
            det.encoder.values[c] = det._a[f"enc{i}_values"].astype(np.float64)
        return det

    def _check(self) -> None:
        if not self._a:
            raise RuntimeError(f"{self.name}: fit() or from_state() first")

    # -- scoring ---------------------------------------------------------------------------------

    def _matrix(self, frame: Frame) -> np.ndarray:
        x_num = matrix(frame, self.numeric)
        if not self.categorical:
            return x_num
        return np.column_stack([x_num, self.encoder.transform(self._cats(frame))])

    def predict_proba(self, frame: Frame) -> np.ndarray:
        self._check()
        return predict_hgb(self._a, self._matrix(frame))

    def score(self, frame: Frame) -> Scores:
        x = self._matrix(frame)
        p = predict_hgb(self._a, x) if len(x) else np.zeros(0)
        prior = self.encoder.prior
        k = len(self.numeric)

        def explain(i: int) -> list[Reason]:
            parts = []
            for j, c in enumerate(self.categorical):
                rate = float(x[i, k + j])
                if prior > 0 and rate >= 3.0 * prior:
                    cats = self._cats({c: np.asarray(frame[c], dtype=object)[i:i + 1]}) if c in frame else {c: [""]}
                    parts.append(f"{label(c)} {cats[c][0]} has a {rate:.0%} fraud rate in labelled history "
                                 f"(overall {prior:.1%})")
            text = f"learnt from labelled fraud: probability {p[i]:.2f}"
            if parts:
                text += ": " + "; ".join(parts[:2])
            elif len(self.numeric):
                z = np.abs(x[i, :k] - self._a["num_median"])
                j = int(np.argmax(z))
                text += f" (largest difference: {label(self.numeric[j])} {fmt(x[i, j])})"
            return [Reason(self.name, text, float(p[i]), 0.5)]

        return Scores(self.name, p, raw=p, explain=explain)


def export_hgb(model: Any) -> dict[str, np.ndarray]:
    """Flatten a fitted binary HistGradientBoostingClassifier into arrays (all trees concatenated)."""
    if getattr(model, "n_trees_per_iteration_", 1) != 1:
        raise ValueError("only binary classifiers are supported")
    feats, thrs, lefts, rights, vals, miss, roots = [], [], [], [], [], [], []
    offset, max_depth = 0, 0
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        if np.any(nodes["is_categorical"]):
            raise ValueError("native categorical splits are not exported; encode categories first")
        m = len(nodes)
        idx = np.arange(m, dtype=np.int64)
        leaf = nodes["is_leaf"].astype(bool)
        lefts.append(np.where(leaf, idx, nodes["left"].astype(np.int64)) + offset)
        rights.append(np.where(leaf, idx, nodes["right"].astype(np.int64)) + offset)
        feats.append(np.where(leaf, 0, nodes["feature_idx"]).astype(np.int64))
        thrs.append(np.where(leaf, 0.0, nodes["num_threshold"]))
        vals.append(np.where(leaf, nodes["value"], 0.0))
        miss.append(nodes["missing_go_to_left"].astype(bool))
        roots.append(offset)
        max_depth = max(max_depth, int(nodes["depth"].max()))
        offset += m
    baseline = float(np.asarray(model._baseline_prediction).ravel()[0])
    if not feats:  # no tree (degenerate fit): the baseline alone
        return {"children": np.zeros(2, np.int64), "feature": np.zeros(1, np.int64), "threshold": np.zeros(1),
                "leaf_value": np.zeros(1), "missing_left": np.zeros(1, bool), "roots": np.zeros(0, np.int64),
                "max_depth": np.asarray(0), "baseline": np.asarray(baseline)}
    return {
        "children": np.stack([np.concatenate(lefts), np.concatenate(rights)], axis=1).ravel(),
        "feature": np.concatenate(feats),
        "threshold": np.concatenate(thrs).astype(np.float64),
        "leaf_value": np.concatenate(vals).astype(np.float64),
        "missing_left": np.concatenate(miss),
        "roots": np.asarray(roots, dtype=np.int64),
        "max_depth": np.asarray(max_depth, dtype=np.int64),
        "baseline": np.asarray(baseline, dtype=np.float64),
    }


def predict_hgb(a: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """P(fraud) for every row: sigmoid(baseline + sum of the leaf values reached in every tree)."""
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float64))
    n, n_feat = x.shape
    roots = np.asarray(a["roots"], dtype=np.int64)
    raw = np.full(n, float(a["baseline"]))
    if roots.size and n:
        children, feat, thr = a["children"], a["feature"], a["threshold"]
        leaf_value, miss_left = a["leaf_value"], a["missing_left"]
        for start in range(0, n, 1024):
            xs = x[start:start + 1024]
            k = len(xs)
            flat = xs.ravel()
            row_base = (np.arange(k, dtype=np.int64) * n_feat)[:, None]
            node = np.broadcast_to(roots, (k, roots.size)).astype(np.int64)
            for _ in range(int(a["max_depth"])):
                v = flat[row_base + feat[node]]
                go_right = np.where(np.isnan(v), ~miss_left[node], v > thr[node])  # sklearn: x <= thr goes left
                node = children[2 * node + go_right]  # leaves point to themselves
            # Sequential sum over trees: same value for a row alone and inside a batch.
            raw[start:start + k] += np.cumsum(np.ascontiguousarray(leaf_value[node]), axis=1)[:, -1]
    return 1.0 / (1.0 + np.exp(-raw))


# ---------------------------------------------------------------------------------------------
# honest training sets and evaluation


@dataclass(frozen=True, slots=True)
class TrainingSet:
    y: np.ndarray  # 0/1 for usable rows
    usable: np.ndarray  # bool mask over the input rows
    n_known_fraud: int
    n_future_labels_ignored: int


def training_labels(event_ts: np.ndarray, label: np.ndarray, known_at: np.ndarray, *, cutoff: float,
                    maturity_seconds: float) -> TrainingSet:
    """What could be known at `cutoff` (epoch seconds) about each event.

    `label`: 1 fraud, 0 legit, -1 no label; `known_at`: when that label became known (epoch
    seconds, NaN when none). A label known after the cutoff is treated as absent: the model must
    not learn from the future. An event without a (known) label is a presumed legit only once it
    is older than `maturity_seconds` (the tenant's chargeback delay); younger ones are left out
    rather than taught as legit, since their chargebacks may still come."""
    ts = np.asarray(event_ts, dtype=np.float64)
    lab = np.asarray(label, dtype=np.int64)
    kn = np.asarray(known_at, dtype=np.float64)
    in_past = ts <= cutoff
    known = (lab >= 0) & np.isfinite(kn) & (kn <= cutoff)
    future = (lab >= 0) & ~known & in_past
    mature = ts <= cutoff - maturity_seconds
    usable = in_past & (known | mature)
    y = np.where(known, lab, 0)[usable]
    return TrainingSet(y=y.astype(np.int8), usable=usable, n_known_fraud=int(((lab == 1) & known & in_past).sum()),
                       n_future_labels_ignored=int(future.sum()))


def time_split(ts: np.ndarray, holdout_fraction: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """(train, holdout) index arrays: the holdout is the most recent `holdout_fraction` of rows by
    event time (a model is judged on what comes after what it learnt from)."""
    ts = np.asarray(ts, dtype=np.float64)
    order = np.argsort(ts, kind="stable")
    cut = int(round(ts.size * (1.0 - holdout_fraction)))
    return np.sort(order[:cut]), np.sort(order[cut:])


def average_precision(y: np.ndarray, s: np.ndarray) -> float | None:
    """Area under the precision-recall curve (step-wise, as sklearn's average_precision_score)."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=np.float64)
    n_pos = int(y.sum())
    if n_pos == 0:
        return None
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    k = np.arange(1, y.size + 1)
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]  # one point per distinct score
    tp, k = tp[last], k[last]
    precision = tp / k
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@dataclass(frozen=True, slots=True)
class Evaluation:
    average_precision: float | None
    recall: float | None
    precision: float | None
    alerts: int
    n: int
    n_positives: int
    # Recall among the top-k scores, k = the champion's alert count: the two models compared at the
    # SAME alert volume (a model that flags everything has recall 1 at its own threshold).
    recall_at_k: float | None = None
    k: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"average_precision": self.average_precision, "recall": self.recall, "precision": self.precision,
                "alerts": self.alerts, "n": self.n, "n_positives": self.n_positives,
                "recall_at_k": self.recall_at_k, "k": self.k}


def evaluate(y: np.ndarray, scores: np.ndarray, threshold: float, *, k: int | None = None) -> Evaluation:
    """Average precision, recall/precision at the operating threshold, and recall in the top k."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    flagged = s >= threshold
    n_pos = int(y.sum())
    recall_k = None
    if k is not None and n_pos:
        top = np.argsort(-s, kind="stable")[:max(int(k), 0)]
        recall_k = float(y[top].sum() / n_pos)
    return Evaluation(
        average_precision=average_precision(y, s),
        recall=float((flagged & y).sum() / n_pos) if n_pos else None,
        precision=float((flagged & y).sum() / flagged.sum()) if flagged.any() else None,
        alerts=int(flagged.sum()), n=int(y.size), n_positives=n_pos, recall_at_k=recall_k, k=k,
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    promote: bool
    reason: str


def champion_challenger(challenger: Evaluation, champion: Evaluation, *, tolerance: float = 0.01,
                        min_positives: int = 5) -> Verdict:
    """Promote only when the challenger is not worse on the held-out window: average precision
    (ranking quality, threshold-free) within `tolerance` of the champion's or better, and recall at
    the champion's alert volume (`recall_at_k`, or recall at the threshold when k was not given) not
    lower by more than `tolerance`. Without enough held-out frauds the comparison would be noise:
    keep the champion."""
    if challenger.n_positives < min_positives:
        return Verdict(False, f"held-out window has {challenger.n_positives} frauds (< {min_positives}): "
                              "cannot tell, champion kept")
    ap_c, ap_0 = challenger.average_precision or 0.0, champion.average_precision or 0.0
    at_k = challenger.recall_at_k is not None and champion.recall_at_k is not None
    r_c = (challenger.recall_at_k if at_k else challenger.recall) or 0.0
    r_0 = (champion.recall_at_k if at_k else champion.recall) or 0.0
    what = f"recall in the top {champion.k}" if at_k else "recall at threshold"
    if ap_c + tolerance < ap_0:
        return Verdict(False, f"average precision {ap_c:.3f} < champion {ap_0:.3f}")
    if r_c + tolerance < r_0:
        return Verdict(False, f"{what} {r_c:.3f} < champion {r_0:.3f}")
    return Verdict(True, f"average precision {ap_c:.3f} vs champion {ap_0:.3f}, {what} {r_c:.3f} vs {r_0:.3f}")


def register_detector_kind() -> None:
    """Make the artifact loader know this detector kind (artifacts store kinds, never objects)."""
    from scoring.detectors import DETECTOR_CLASSES

    DETECTOR_CLASSES.setdefault(GradientBoostingDetector.name, GradientBoostingDetector)


register_detector_kind()
