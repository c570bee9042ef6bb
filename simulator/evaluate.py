"""Match detected anomalies (DESIGN.md "Anomaly" dicts) to ground-truth labels.

Matching rules (generous on purpose where a real analyst would accept the alert):
- KPI/stock labels match anomalies of kind "kpi" or "stock" whose `occurred_at` lies in
  [start - tolerance, end + tolerance], whose metric is the label's metric or one of its
  related metrics, whose dimensions do not contradict the label's (a global anomaly may
  report a per-channel incident; a different channel may not), and whose entity, when
  both are set, is the label's.
- Fraud labels match "transaction" anomalies sharing at least one event id, or naming the
  label's entity (IP, device, customer, store) within the widened window.

Figures: recall per label type; precision per anomaly kind and per metric; false alarms
per 1,000 evaluated buckets (KPI: unmatched anomalies / buckets) or events (fraud:
flagged legit events / evaluated events); detection delay per type, measured from the
incident start either to `occurred_at` (data time: what backfills measure) or to
`detected_at` (wall clock: meaningful for live runs); the basis is stated in the result.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from simulator.labels import Label, parse_time

DelayBasis = Literal["occurred_at", "detected_at"]
_KPI_KINDS = ("kpi", "stock")


@dataclass(frozen=True)
class Detection:
    """The parts of an Anomaly the matcher reads (parsed once)."""

    index: int
    kind: str
    occurred_at: datetime
    detected_at: datetime | None
    metric: str | None
    dimensions: Mapping[str, Any]
    entity: str | None
    event_ids: frozenset[str]
    score: float | None
    detectors: tuple[str, ...]

    @classmethod
    def from_anomaly(cls, index: int, a: Mapping[str, Any]) -> Detection:
        detected = a.get("detected_at")
        dets = a.get("detectors") or {}
        return cls(index=index, kind=str(a.get("kind", "")), occurred_at=parse_time(a["occurred_at"]),
                   detected_at=parse_time(detected) if detected else None, metric=a.get("metric"),
                   dimensions=dict(a.get("dimensions") or {}), entity=a.get("entity"),
                   event_ids=frozenset(a.get("event_ids") or ()), score=a.get("score"),
                   detectors=tuple(sorted(dets)) if isinstance(dets, Mapping) else tuple(dets))


@dataclass
class TypeResult:
    type: str
    kind: str
    labels: int
    detected: int
    delays_seconds: list[float] = field(default_factory=list)
    event_recall: float | None = None  # fraud: share of the type's fraudulent events flagged

    @property
    def recall(self) -> float:
        return self.detected / self.labels if self.labels else math.nan

    def delay(self, q: float) -> float | None:
        if not self.delays_seconds:
            return None
        s = sorted(self.delays_seconds)
        return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


@dataclass
class EvaluationResult:
    per_type: dict[str, TypeResult]
    precision: dict[str, float]  # by anomaly kind group: "kpi", "fraud", "all"
    precision_by_metric: dict[str, float]
    precision_by_detector: dict[str, float]
    false_alarms_per_1000: dict[str, float]  # "kpi" per bucket, "fraud" per event
    event_level: dict[str, float]  # fraud: precision, recall, flagged, fraud_events, evaluated
    matches: dict[str, list[int]]  # incident_id -> anomaly indexes
    unmatched: list[int]
    delay_basis: DelayBasis
    tolerance_seconds: float
    kpi_buckets: int
    counts: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "delay_basis": self.delay_basis,
            "tolerance_seconds": self.tolerance_seconds,
            "kpi_buckets": self.kpi_buckets,
            "counts": self.counts,
            "per_type": {t: {"kind": r.kind, "labels": r.labels, "detected": r.detected,
                             "recall": _num(r.recall), "delay_median_s": r.delay(0.5),
                             "delay_max_s": r.delay(1.0), "event_recall": _num(r.event_recall)}
                         for t, r in sorted(self.per_type.items())},
            "precision": {k: _num(v) for k, v in self.precision.items()},
            "precision_by_metric": {k: _num(v) for k, v in self.precision_by_metric.items()},
            "precision_by_detector": {k: _num(v) for k, v in self.precision_by_detector.items()},
            "false_alarms_per_1000": {k: _num(v) for k, v in self.false_alarms_per_1000.items()},
            "event_level": {k: _num(v) for k, v in self.event_level.items()},
            "matches": self.matches,
            "unmatched": self.unmatched,
        }


def _num(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 6)


def _ratio(a: int, b: int) -> float:
    return a / b if b else math.nan


# Labels name dimensions by event field (product_id, store_id); KPI anomalies by KPI dimension
# (product, store). Without this a product-scoped label would accept any product's anomaly.
_DIMENSION_ALIASES = {"product_id": "product", "store_id": "store"}


def dims_compatible(label_dims: Mapping[str, Any], anomaly_dims: Mapping[str, Any]) -> bool:
    """No dimension present on both sides may disagree (event-field and KPI names are one dimension)."""
    def norm(dims: Mapping[str, Any]) -> dict[str, str]:
        return {_DIMENSION_ALIASES.get(k, k): str(v) for k, v in dims.items()}

    anomaly = norm(anomaly_dims)
    return all(anomaly[k] == v for k, v in norm(label_dims).items() if k in anomaly)


def kpi_match(label: Label, d: Detection, tolerance: timedelta) -> bool:
    if d.kind not in _KPI_KINDS:
        return False
    if not (label.start - tolerance <= d.occurred_at <= label.end + tolerance):
        return False
    if label.metrics and d.metric not in label.metrics:
        return False
    if not dims_compatible(label.dimensions, d.dimensions):
        return False
    # The entity only constrains entity-scoped labels (a product, a campaign); a channel-wide
    # anomaly carries no entity and is judged by its dimensions.
    return not (label.entity and d.entity and d.entity != label.entity and label.kind == "stock")


def fraud_match(label: Label, d: Detection, tolerance: timedelta) -> bool:
    if d.kind != "transaction":
        return False
    if d.event_ids and not d.event_ids.isdisjoint(label.event_ids):
        return True
    return bool(label.entity) and d.entity == label.entity and (
        label.start - tolerance <= d.occurred_at <= label.end + tolerance)


def evaluate(labels: Sequence[Label], anomalies: Iterable[Mapping[str, Any]], *,
             truth: Mapping[str, str] | None = None, tolerance: timedelta = timedelta(hours=1),
             kpi_buckets: int | None = None, scenario_start: datetime | None = None,
             scenario_end: datetime | None = None, bucket: timedelta = timedelta(hours=1),
             delay_basis: DelayBasis = "occurred_at") -> EvaluationResult:
    """Score `anomalies` against `labels`.

    `truth` (event id -> "fraud"/"legit", usually `Scenario.truth`) enables event-level
    fraud figures. `kpi_buckets` is how many (series x bucket) cells the KPI detectors
    evaluated; if unknown it defaults to the scenario's hours (one series), which makes
    the KPI false-alarm rate an upper bound.
    """
    dets = [Detection.from_anomaly(i, a) for i, a in enumerate(anomalies)]
    if kpi_buckets is None:
        if scenario_start is None or scenario_end is None:
            starts = [lab.start for lab in labels] + [d.occurred_at for d in dets]
            ends = [lab.end for lab in labels] + [d.occurred_at for d in dets]
            scenario_start = scenario_start or (min(starts) if starts else None)
            scenario_end = scenario_end or (max(ends) if ends else None)
        span = (scenario_end - scenario_start) if scenario_start and scenario_end else timedelta(0)
        kpi_buckets = max(1, math.ceil(span / bucket))

    matches: dict[str, list[int]] = {}
    matched: set[int] = set()
    per_type: dict[str, TypeResult] = {}
    for lab in labels:
        is_fraud = lab.kind == "fraud"
        hits = [d for d in dets if (fraud_match if is_fraud else kpi_match)(lab, d, tolerance)]
        matches[lab.incident_id] = [d.index for d in hits]
        matched.update(d.index for d in hits)
        r = per_type.setdefault(lab.type, TypeResult(type=lab.type, kind=lab.kind, labels=0, detected=0))
        r.labels += 1
        if hits:
            r.detected += 1
            r.delays_seconds.append(min(_delay(lab, d, delay_basis) for d in hits))

    def precision(group: list[Detection]) -> float:
        return _ratio(sum(d.index in matched for d in group), len(group))

    kpi = [d for d in dets if d.kind in _KPI_KINDS]
    fraud = [d for d in dets if d.kind == "transaction"]
    by_metric: dict[str, list[Detection]] = {}
    for d in kpi:
        by_metric.setdefault(d.metric or "?", []).append(d)
    by_detector: dict[str, list[Detection]] = {}
    for d in dets:
        for name in d.detectors:
            by_detector.setdefault(name, []).append(d)

    event_level: dict[str, float] = {}
    fa_fraud = math.nan
    if truth is not None:
        flagged = set().union(*(d.event_ids for d in fraud)) if fraud else set()
        flagged_known = {e for e in flagged if e in truth}
        fraud_events = {e for e, v in truth.items() if v == "fraud"}
        tp = len(flagged_known & fraud_events)
        fp = len(flagged_known) - tp
        event_level = {"precision": _ratio(tp, len(flagged_known)), "recall": _ratio(tp, len(fraud_events)),
                       "flagged": float(len(flagged_known)), "true_positives": float(tp),
                       "fraud_events": float(len(fraud_events)), "evaluated_events": float(len(truth))}
        fa_fraud = 1000 * _ratio(fp, len(truth))
        for t, r in per_type.items():
            if r.kind == "fraud":
                ids = set().union(*(set(lab.event_ids) for lab in labels if lab.type == t))
                r.event_recall = _ratio(len(ids & flagged), len(ids))

    return EvaluationResult(
        per_type=per_type,
        precision={"kpi": precision(kpi), "fraud": precision(fraud), "all": precision(dets)},
        precision_by_metric={m: precision(g) for m, g in sorted(by_metric.items())},
        precision_by_detector={n: precision(g) for n, g in sorted(by_detector.items())},
        false_alarms_per_1000={"kpi": 1000 * _ratio(sum(d.index not in matched for d in kpi), kpi_buckets),
                               "fraud": fa_fraud},
        event_level=event_level,
        matches=matches,
        unmatched=sorted(set(range(len(dets))) - matched),
        delay_basis=delay_basis,
        tolerance_seconds=tolerance.total_seconds(),
        kpi_buckets=kpi_buckets,
        counts={"anomalies": len(dets), "kpi_anomalies": len(kpi), "fraud_anomalies": len(fraud),
                "labels": len(labels)},
    )


def _delay(label: Label, d: Detection, basis: DelayBasis) -> float:
    t = d.detected_at if basis == "detected_at" and d.detected_at else d.occurred_at
    # A detection inside the tolerance before the start counts as zero delay, not negative.
    return max(0.0, (t - label.start).total_seconds())
