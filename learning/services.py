"""Writes of the learning layer: feedback and labels, the scored-event log, threshold
recalibration (with pin and rollback), drift reports, retraining jobs and model promotion.

Everything runs in the active tenant schema; tasks call these with ids only."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring_ascii as _json_str
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from pulse.lib.db import SMALL_INSERT_ROWS, binary_micros, binary_texts, rows_write, rows_write_binary

from . import recalibrate as recal
from .config import LearningConfig, learning_config
from .drift import DriftThresholds, compare
from .log import CONTEXT_COLUMNS, LOG_FEATURES, context_json, feature_rows, frame_from_log
from .models import DriftReport, Label, LabelHistory, RetrainJob, ScoredEvent, Threshold, ThresholdChange

log = logging.getLogger(__name__)

FEEDBACK_LABELS = {"true_positive": Label.Value.FRAUD, "false_positive": Label.Value.LEGIT}
MAX_LABELS_PER_REQUEST = 10_000
# The one threshold the transaction path reads from the tenant config (risk >= it -> REVIEW).
REVIEW_THRESHOLD = ("consensus", "review_threshold")
_LOG_CHUNK = 2_000


class LearningError(Exception):
    """A learning action that cannot be done as asked (answered as 400/404/409, never 500)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _tenant() -> Any:
    from tenants.selectors import tenant_current

    return tenant_current()


# ---------------------------------------------------------------------------------------------
# feedback and labels


def anomaly_feedback_give(*, anomaly_id: int, label: str, note: str = "", by: str) -> Any:
    """Record an analyst's verdict on an anomaly: Anomaly.feedback (latest), a history row, and a
    label for each of its events (true_positive -> fraud, false_positive -> legit), known now."""
    from scoring.models import Anomaly

    if label not in FEEDBACK_LABELS:
        raise LearningError(f"label must be one of {sorted(FEEDBACK_LABELS)}")
    now = timezone.now()
    with transaction.atomic():
        anomaly = Anomaly.objects.select_for_update().filter(pk=anomaly_id).first()
        if anomaly is None:
            raise LearningError("No such anomaly.", status=404)
        anomaly.feedback = {"label": label, "note": note, "by": by, "at": now.isoformat()}
        anomaly.save(update_fields=["feedback"])
        LabelHistory.objects.create(anomaly_id=anomaly.pk, event_id=",".join(anomaly.event_ids)[:128], label=label,
                                    note=note, source=Label.Source.FEEDBACK, by=by, known_at=now, created_at=now)
        value = FEEDBACK_LABELS[label]
        for event_id in anomaly.event_ids:
            Label.objects.update_or_create(event_id=event_id, defaults={
                "label": value, "known_at": now, "source": Label.Source.FEEDBACK, "flagged": True,
                "anomaly_id": anomaly.pk, "by": by, "updated_at": now})
    return anomaly


def labels_ingest(*, labels: Sequence[Mapping[str, Any]], by: str, now: datetime | None = None) -> dict[str, int]:
    """Bulk ground truth by event id (e.g. a chargeback file). Returns counts:
    matched_flagged (labels of events an anomaly flagged; of which false_positives are legit),
    missed (fraud labels of events never flagged), legit_unflagged, unknown_event_ids (ids the
    tenant never sent: stored anyway, they match if the events arrive later)."""
    from ingestion.models import EventKey
    from scoring.models import Anomaly

    if len(labels) > MAX_LABELS_PER_REQUEST:
        raise LearningError(f"at most {MAX_LABELS_PER_REQUEST} labels per request")
    now = now or timezone.now()
    latest: dict[str, Mapping[str, Any]] = {}
    for item in labels:  # the last label of an id in one file wins
        latest[str(item["event_id"])] = item
    ids = list(latest)
    known_ids = set(EventKey.objects.filter(event_id__in=ids).values_list("event_id", flat=True))
    flagged: dict[str, int] = {}
    for pk, event_ids in Anomaly.objects.filter(event_ids__overlap=ids).values_list("pk", "event_ids"):
        for e in event_ids:
            flagged.setdefault(e, pk)
    counts = {"received": len(labels), "stored": len(ids), "fraud": 0, "legit": 0, "matched_flagged": 0,
              "false_positives": 0, "missed": 0, "legit_unflagged": 0, "unknown_event_ids": 0}
    rows, history = [], []
    for event_id, item in latest.items():
        value = str(item["label"])
        known_at = item.get("known_at") or now
        is_flagged = event_id in flagged
        counts[value] += 1
        if event_id not in known_ids:
            counts["unknown_event_ids"] += 1
        elif is_flagged:
            counts["matched_flagged"] += 1
            counts["false_positives"] += value == Label.Value.LEGIT
        elif value == Label.Value.FRAUD:
            counts["missed"] += 1
        else:
            counts["legit_unflagged"] += 1
        rows.append(Label(event_id=event_id, label=value, known_at=known_at, source=Label.Source.BULK,
                          flagged=is_flagged, anomaly_id=flagged.get(event_id), by=by, updated_at=now))
        history.append(LabelHistory(event_id=event_id, anomaly_id=flagged.get(event_id), label=value,
                                    source=Label.Source.BULK, by=by, known_at=known_at, created_at=now))
    with transaction.atomic():
        for start in range(0, len(rows), _LOG_CHUNK):
            Label.objects.bulk_create(rows[start:start + _LOG_CHUNK], update_conflicts=True, unique_fields=["event_id"],
                                      update_fields=["label", "known_at", "source", "flagged", "anomaly_id", "by",
                                                     "updated_at"])
        LabelHistory.objects.bulk_create(history, batch_size=_LOG_CHUNK)
    return counts


# ---------------------------------------------------------------------------------------------
# the scored-event log (written by the scoring path)


def scored_events_record(*, scored: Any) -> int:
    """Keep what the scoring path saw and said for a scored batch (`scoring.pipeline.ScoredTransactions`):
    features, context, risk, decision and calibrated detector scores. One bulk write per batch."""
    events, frame, result = scored.events, scored.frame, scored.result
    n = len(events)
    if n == 0:
        return 0
    x = feature_rows(frame, n)
    version = int(scored.scorer.model_version)
    cal = {name: np.asarray(v, dtype=np.float64) for name, v in result.calibrated.items()}
    now = timezone.now()
    risk = np.asarray(result.risk, dtype=np.float64)
    names = list(cal)
    det_cols = [[round(v, 6) for v in cal[k].tolist()] for k in names]
    # JSON text from templates (same text as json.dumps of these flat dicts: keys through the
    # encoder's own escaping, floats through repr): one json.dumps per row and column cost ~10 %.
    det_tmpl = "{" + ", ".join(f"{_json_str(k)}: %r" for k in names) + "}"
    det_json = [det_tmpl % vals for vals in zip(*det_cols, strict=True)] if names else ["{}"] * n
    if not all(math.isfinite(v) for col in det_cols for v in col):
        det_json = [json.dumps({k: c[i] for k, c in zip(names, det_cols, strict=True)}) for i in range(n)]
    ctx_json = context_json(events, frame)
    event_ids = [str(e["event_id"]) for e in events]
    occurred = [e.get("occurred_at") or e.get("timestamp") for e in events]
    decisions = [str(d) for d in result.decisions]
    table = connection.ops.quote_name(ScoredEvent._meta.db_table)
    columns = ("event_id", "occurred_at", "model_version", "risk", "decision", "detectors", "features", "context",
               "created_at")
    with connection.cursor() as cursor:
        if n <= SMALL_INSERT_ROWS:  # one INSERT (one round trip; the fraud-check's single payment)
            rows = [(event_ids[i], occurred[i], version, float(risk[i]), decisions[i], det_json[i], x[i].tolist(),
                     ctx_json[i], now) for i in range(n)]
            return rows_write(cursor, table, columns, rows)
        # COPY in binary, built by columns: the ORM spent ~70 % of the whole batch consumer building
        # the INSERT, and COPY's text format still cost a float repr per feature here and a
        # `float8in` per feature in PostgreSQL. Same values: floats bit for bit, JSON as json.dumps
        # writes it, naive timestamps read as UTC.
        return rows_write_binary(cursor, table, columns, [
            binary_texts(event_ids), binary_micros(occurred), np.full(n, version, dtype=np.int32), risk,
            binary_texts(decisions), binary_texts(det_json, jsonb=True), x, binary_texts(ctx_json, jsonb=True),
            np.full(n, binary_micros([now])[0], dtype=np.int64)])


def scored_events_prune(*, now: datetime | None = None) -> int:
    days = learning_config(_tenant()).log_retention_days
    deleted, _ = ScoredEvent.objects.filter(occurred_at__lt=(now or timezone.now()) - timedelta(days=days)).delete()
    return deleted


def _log_window(start: datetime, end: datetime, *, limit: int = 200_000) -> dict[str, Any]:
    """Rows of the scored-event log with start <= occurred_at < end (the most recent `limit`)."""
    rows = list(ScoredEvent.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
                .order_by("-occurred_at").values_list("event_id", "occurred_at", "risk", "features", "context")[:limit])
    rows.reverse()
    n = len(rows)
    width = len(LOG_FEATURES)
    feats = [r[3] if len(r[3]) == width else (list(r[3]) + [0.0] * width)[:width] for r in rows]
    frame = frame_from_log(feats, [r[4] or {} for r in rows])
    return {"event_id": [r[0] for r in rows], "ts": np.array([r[1].timestamp() for r in rows], dtype=np.float64),
            "risk": np.array([r[2] for r in rows], dtype=np.float64), "frame": frame, "n": n}


def _labels_for(event_ids: Iterable[str]) -> dict[str, tuple[int, float]]:
    """event id -> (1 fraud / 0 legit, known_at epoch seconds)."""
    ids = list(event_ids)
    out: dict[str, tuple[int, float]] = {}
    for start in range(0, len(ids), 20_000):
        for event_id, value, known_at in Label.objects.filter(event_id__in=ids[start:start + 20_000]).values_list(
                "event_id", "label", "known_at"):
            out[event_id] = (1 if value == Label.Value.FRAUD else 0, known_at.timestamp())
    return out


# ---------------------------------------------------------------------------------------------
# thresholds


def _scoring_value(detector: str, metric: str) -> float | None:
    if (detector, metric) == REVIEW_THRESHOLD:
        from scoring.config import scoring_config

        return float(scoring_config(_tenant()).consensus.review_threshold)
    return None


def _apply_to_scoring(detector: str, metric: str, value: float) -> None:
    """Write the active value where the scoring path reads it: the tenant's `scoring` config (its
    fingerprint is part of the engine cache key, so workers pick the change up on their next batch)."""
    if (detector, metric) != REVIEW_THRESHOLD:
        return
    from tenants.config import config_validate

    tenant = _tenant()
    config = dict(tenant.config or {})
    scoring = dict(config.get("scoring") or {})
    consensus = dict(scoring.get("consensus") or {})
    consensus["review_threshold"] = float(value)
    scoring["consensus"] = consensus
    config["scoring"] = scoring
    tenant.config = config_validate(config)
    type(tenant).objects.filter(pk=tenant.pk).update(config=tenant.config)


def threshold_get(*, detector: str, metric: str) -> Threshold:
    """The threshold row, created from the value scoring currently uses on first access."""
    row = Threshold.objects.filter(detector=detector, metric=metric).first()
    if row is not None:
        return row
    current = _scoring_value(detector, metric)
    if current is None:
        raise LearningError(f"unknown threshold {detector}/{metric}", status=404)
    row, _ = Threshold.objects.get_or_create(detector=detector, metric=metric, defaults={"value": current})
    return row


def _max_review(policy_max: float) -> float:
    """review_threshold must stay below block_threshold (the scoring config refuses otherwise)."""
    from scoring.config import scoring_config

    block = scoring_config(_tenant()).consensus.block_threshold
    return min(policy_max, block - 1e-3)


def _change(row: Threshold, *, new: float, action: str, reason: str, by: str, mode: str = "",
            before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
            details: dict[str, Any] | None = None) -> ThresholdChange:
    change = ThresholdChange.objects.create(threshold=row, action=action, old_value=row.value, new_value=new, mode=mode,
                                            reason=reason, expected_before=before or {}, expected_after=after or {},
                                            details=details or {}, by=by)
    row.value, row.updated_at = new, timezone.now()
    row.save(update_fields=["value", "updated_at", "pinned", "pinned_by"])
    _apply_to_scoring(row.detector, row.metric, new)
    return change


def thresholds_recalibrate(*, now: datetime | None = None) -> list[ThresholdChange]:
    """Beat: recalibrate the tenant's thresholds from labels (or the alert budget). Pinned ones are left."""
    now = now or timezone.now()
    cfg = learning_config(_tenant()).recalibration
    if not cfg.enabled:
        return []
    changes = []
    with transaction.atomic():
        row = threshold_get(detector=REVIEW_THRESHOLD[0], metric=REVIEW_THRESHOLD[1])
        row = Threshold.objects.select_for_update().get(pk=row.pk)
        if row.pinned:
            return []
        window = _log_window(now - timedelta(days=cfg.window_days), now)
        labels = _labels_for(window["event_id"])
        idx = [i for i, e in enumerate(window["event_id"]) if e in labels and labels[e][1] <= now.timestamp()]
        y = np.array([labels[window["event_id"][i]][0] for i in idx], dtype=np.int8)
        policy = recal.RecalibrationPolicy(
            mode=cfg.mode, target=cfg.target, min_labels=cfg.min_labels, min_positives=cfg.min_positives,
            min_negatives=cfg.min_negatives, min_alerts_labelled=cfg.min_alerts_labelled,
            alerts_per_day=cfg.alerts_per_day, min_threshold=cfg.min_threshold,
            max_threshold=_max_review(cfg.max_threshold), min_change=cfg.min_change)
        if window["n"] == 0:
            return []
        days = max((window["ts"].max() - window["ts"].min()) / 86_400.0, 1.0 / 24)
        result = recal.recalibrate(current=row.value, scores=window["risk"], days=days,
                                   labelled_scores=window["risk"][idx] if idx else np.empty(0), labels=y, policy=policy)
        if result.changed:
            changes.append(_change(row, new=result.new_threshold, action=ThresholdChange.Action.RECALIBRATED,
                                   reason=result.reason, by="recalibration", mode=result.mode,
                                   before=result.before.as_dict(), after=result.after.as_dict(),
                                   details={**result.details, "n_labels": result.n_labels,
                                            "n_positives": result.n_positives, "n_scores": result.n_scores,
                                            "window_days": cfg.window_days}))
    return changes


def threshold_pin(*, detector: str, metric: str, by: str, value: float | None = None, pinned: bool = True) -> Threshold:
    """A person fixes a threshold (optionally to a new value) or releases it to recalibration."""
    with transaction.atomic():
        row = Threshold.objects.select_for_update().get(pk=threshold_get(detector=detector, metric=metric).pk)
        if value is not None and (detector, metric) == REVIEW_THRESHOLD and not 0 < value < _max_review(1.0) + 1e-3:
            raise LearningError("review_threshold must be above 0 and below the block threshold")
        row.pinned, row.pinned_by = pinned, by if pinned else ""
        new = row.value if value is None else float(value)
        action = ThresholdChange.Action.PINNED if pinned else ThresholdChange.Action.UNPINNED
        _change(row, new=new, action=action, by=by, mode="manual",
                reason=f"{'pinned' if pinned else 'released'} by {by}" + (f" at {new:g}" if value is not None else ""))
    return row


def threshold_rollback(*, change_id: int, by: str) -> ThresholdChange:
    """Undo a recorded change: the threshold goes back to the change's old value (and is pinned,
    so that the next recalibration does not redo what a person just undid)."""
    with transaction.atomic():
        change = ThresholdChange.objects.select_for_update().filter(pk=change_id).first()
        if change is None:
            raise LearningError("No such threshold change.", status=404)
        if change.rolled_back_by_id is not None:
            raise LearningError("This change was already rolled back.", status=409)
        row = Threshold.objects.select_for_update().get(pk=change.threshold_id)
        row.pinned, row.pinned_by = True, by
        undo = _change(row, new=change.old_value, action=ThresholdChange.Action.ROLLED_BACK, by=by, mode="manual",
                       reason=f"rollback of change {change.pk} ({change.old_value:g} -> {change.new_value:g}) by {by}; "
                              "pinned until released")
        change.rolled_back_by = undo
        change.save(update_fields=["rolled_back_by"])
    return undo


# ---------------------------------------------------------------------------------------------
# drift


def drift_check(*, now: datetime | None = None) -> DriftReport | None:
    """Beat: compare the recent window with the active model's reference window; store a report,
    raise a `drift` anomaly at or above the configured level and request retraining."""
    from scoring import registry

    now = now or timezone.now()
    cfg = learning_config(_tenant()).drift
    if not cfg.enabled:
        return None
    active = registry.active_version()
    recent_from = now - timedelta(days=cfg.recent_days)
    if active.kind == "tenant" and active.training_from and active.training_to:
        ref_from, ref_to = active.training_from, min(active.training_to, recent_from)
    else:
        ref_from, ref_to = recent_from - timedelta(days=cfg.reference_days), recent_from
    if ref_to <= ref_from:
        ref_from, ref_to = recent_from - timedelta(days=cfg.reference_days), recent_from
    ref = _log_window(ref_from, ref_to, limit=50_000)
    rec = _log_window(recent_from, now, limit=50_000)
    th = DriftThresholds(psi_moderate=cfg.psi_moderate, psi_major=cfg.psi_major, ks_moderate=cfg.ks_moderate,
                         ks_major=cfg.ks_major, min_rows=cfg.min_rows)
    result = compare(ref["frame"], rec["frame"], LOG_FEATURES, reference_scores=ref["risk"], recent_scores=rec["risk"],
                     thresholds=th)
    report = DriftReport.objects.create(
        model_version=active.version, level=result.level, reference_from=ref_from, reference_to=ref_to,
        recent_from=recent_from, recent_to=now, n_reference=ref["n"], n_recent=rec["n"],
        features=[f.as_dict() for f in result.features], score=result.score.as_dict() if result.score else None,
        notes=result.notes)
    order = ("none", "moderate", "major")
    if order.index(result.level) >= order.index(cfg.anomaly_level):
        report.anomaly_id = _drift_anomaly(report, result, now=now)
        if cfg.retrain_on_drift:
            report.retrain_job = retrain_request(trigger=RetrainJob.Trigger.DRIFT, by=f"drift report {report.pk}")
        report.save(update_fields=["anomaly_id", "retrain_job"])
    return report


def _drift_anomaly(report: DriftReport, result: Any, *, now: datetime) -> int | None:
    from scoring.models import Anomaly
    from scoring.services import anomalies_record

    drifted = result.drifted[:5]
    reasons = [{"detector": "drift", "text": f"{f.name}: PSI {f.psi:.2f}, KS {f.ks:.2f} (mean {f.reference_mean:.3g} "
                                            f"-> {f.recent_mean:.3g})", "value": f.psi,
                "threshold": report_threshold(f.level)} for f in drifted]
    if result.score is not None and result.score.level != "none":
        reasons.insert(0, {"detector": "drift", "text": f"risk scores: PSI {result.score.psi:.2f}, KS {result.score.ks:.2f}",
                           "value": result.score.psi, "threshold": report_threshold(result.score.level)})
    worst = max([f.psi for f in result.features] + ([result.score.psi] if result.score else []), default=0.0)
    anomaly = Anomaly(kind="drift", occurred_at=now, metric="feature_distribution", entity=f"model v{report.model_version}",
                      score=float(min(1.0, worst / 0.5)), severity="high" if result.level == "major" else "medium",
                      direction="up", reasons=reasons, detectors={"drift": float(min(1.0, worst / 0.5))},
                      dimensions={"model_version": str(report.model_version), "drift_report": str(report.pk)},
                      observed=float(worst), expected=0.0)
    created = anomalies_record(anomalies=[anomaly])
    return created[0].pk if created else None


def report_threshold(level: str) -> float:
    return 0.25 if level == "major" else 0.1


# ---------------------------------------------------------------------------------------------
# retraining and the registry


# Past the retraining task's hard time limit (30 min) plus a margin, a "running" job has no worker
# left; a "queued" one older than this lost its message. Either would block retraining forever.
RETRAIN_STALE_AFTER = timedelta(minutes=35)


def retrain_jobs_reap(*, now: datetime | None = None) -> int:
    """Fail jobs whose worker died and re-queue jobs whose task message was lost."""
    from .tasks import retrain_run

    now = now or timezone.now()
    cutoff = now - RETRAIN_STALE_AFTER
    dead = RetrainJob.objects.filter(status=RetrainJob.Status.RUNNING, started_at__lt=cutoff).update(
        status=RetrainJob.Status.FAILED, finished_at=now,
        error=f"no result {RETRAIN_STALE_AFTER} after it started: its worker died; a new job may run")
    lost = list(RetrainJob.objects.filter(status=RetrainJob.Status.QUEUED, created_at__lt=cutoff)
                .values_list("pk", flat=True))
    for job_id in lost:
        transaction.on_commit(lambda job_id=job_id: retrain_run.delay(job_id))
    return dead + len(lost)


def retrain_request(*, trigger: str, by: str = "") -> RetrainJob:
    """Queue a retraining job (after commit). One queued/running job per tenant at a time."""
    from .tasks import retrain_run

    retrain_jobs_reap()
    existing = RetrainJob.objects.filter(status__in=[RetrainJob.Status.QUEUED, RetrainJob.Status.RUNNING]).first()
    if existing is not None:
        return existing
    job = RetrainJob.objects.create(trigger=trigger, requested_by=by)
    transaction.on_commit(lambda: retrain_run.delay(job.pk))
    return job


def challenger_consensus(consensus: Any, model: Any, cfg: LearningConfig) -> Any:
    """The consensus settings a model is scored with once promoted: the tenant's, plus the
    supervised detector's weight when the model has one and the tenant has not set it."""
    import dataclasses

    from .supervised import GradientBoostingDetector

    name = GradientBoostingDetector.name
    if name not in [d.name for d in model.detectors] or name in consensus.detector_weights:
        return consensus
    return dataclasses.replace(consensus, detector_weights={**consensus.detector_weights,
                                                            name: cfg.retraining.supervised_weight})


def _weights_apply(consensus: Any) -> None:
    """Write detector weights into the tenant's scoring config (read by the scoring path)."""
    from tenants.config import config_validate

    tenant = _tenant()
    config = dict(tenant.config or {})
    scoring = dict(config.get("scoring") or {})
    section = dict(scoring.get("consensus") or {})
    section["detector_weights"] = {**section.get("detector_weights", {}), **dict(consensus.detector_weights)}
    scoring["consensus"] = section
    config["scoring"] = scoring
    tenant.config = config_validate(config)
    type(tenant).objects.filter(pk=tenant.pk).update(config=tenant.config)


def _engine_for(model: Any, version: int, scoring_cfg: Any, consensus: Any = None) -> Any:
    """The scoring engine of a model as the scoring path builds it (tenant calibration when there is
    enough of it), without rules: rules are the same for champion and challenger."""
    from scoring.calibration import calibrator_from_dict
    from scoring.consensus import ScoringEngine
    from scoring.models import CalibrationState
    from scoring.pipeline import consensus_config_for

    states = {s.detector: s for s in CalibrationState.objects.filter(model_version=version)}
    calibrators = {}
    for det in model.detectors:
        state = states.get(det.name)
        if state is not None and state.n_reference >= scoring_cfg.calibration.min_scores:
            calibrators[det.name] = calibrator_from_dict(state.calibrator)
        else:
            calibrators[det.name] = model.calibrators[det.name]
    return ScoringEngine(model.detectors, calibrators, None, consensus or consensus_config_for(scoring_cfg))


def _take(frame: Mapping[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: np.asarray(v)[idx] for k, v in frame.items()}


def train_challenger(*, frame: Mapping[str, np.ndarray], ts: np.ndarray, y_all: np.ndarray, known_at: np.ndarray,
                     cutoff: float, cfg: LearningConfig) -> dict[str, Any]:
    """Fit the challenger on data before the held-out window (no Django): unsupervised detectors
    on every row, the supervised model on rows whose label was knowable at the cutoff."""
    from scoring.calibration import fit_calibrator
    from scoring.detectors.training import train_global_model

    from .supervised import GradientBoostingDetector, time_split, training_labels

    rc = cfg.retraining
    ts_set = training_labels(ts, y_all, known_at, cutoff=cutoff, maturity_seconds=rc.label_maturity_days * 86_400)
    usable = np.flatnonzero(ts_set.usable)
    train_pos, hold_pos = time_split(ts[usable], rc.holdout_fraction)
    train_idx, hold_idx = usable[train_pos], usable[hold_pos]
    y_train, y_hold = ts_set.y[train_pos], ts_set.y[hold_pos]
    hold_start = ts[hold_idx].min() if hold_idx.size else cutoff
    unsup_idx = np.flatnonzero(ts < hold_start)
    if unsup_idx.size < rc.min_rows:
        raise LearningError(f"not enough scored events before the held-out window ({unsup_idx.size} < {rc.min_rows})",
                            status=409)
    model = train_global_model(_take(frame, unsup_idx), seed=rc.seed, n_estimators=rc.n_estimators)
    info: dict[str, Any] = {"rows_unsupervised": int(unsup_idx.size), "rows_labelled_train": int(train_idx.size),
                            "known_fraud_train": int(y_train.sum()), "holdout_rows": int(hold_idx.size),
                            "holdout_fraud": int(y_hold.sum()), "future_labels_ignored": ts_set.n_future_labels_ignored,
                            "supervised": False}
    n_pos = int(y_train.sum())
    if n_pos >= rc.supervised_min_positives and y_train.size - n_pos >= rc.supervised_min_positives:
        # Fit on the older 80 % of the labelled training rows, calibrate on the newer 20 %.
        fit_pos, cal_pos = time_split(ts[train_idx], 0.2)
        if int(y_train[cal_pos].sum()) >= 2 and int(y_train[fit_pos].sum()) >= 2:
            det = GradientBoostingDetector(seed=rc.seed).fit(_take(frame, train_idx[fit_pos]), y_train[fit_pos])
            raw = det.score(_take(frame, train_idx[cal_pos])).raw
            model.detectors.append(det)
            model.calibrators[det.name] = fit_calibrator(raw, y_train[cal_pos])
            info["supervised"] = True
            info["supervised_calibrator"] = model.calibrators[det.name].kind
    return {"model": model, "hold_idx": hold_idx, "y_hold": y_hold, "info": info}


def retrain_run(*, job_id: int, now: datetime | None = None) -> RetrainJob:
    """Train the tenant's challenger, evaluate it against the model in use on the held-out recent
    window, register it (artifact + metrics + window + features + code version + checksum) and
    promote it when it is not worse."""
    from scoring import registry
    from scoring.artifacts import CODE_VERSION
    from scoring.config import scoring_config

    from .supervised import champion_challenger, evaluate

    job = RetrainJob.objects.get(pk=job_id)
    if job.status in (RetrainJob.Status.DONE, RetrainJob.Status.FAILED):
        return job
    now = now or timezone.now()
    job.status, job.started_at, job.cutoff = RetrainJob.Status.RUNNING, timezone.now(), now
    job.save(update_fields=["status", "started_at", "cutoff"])
    tenant = _tenant()
    cfg, scoring_cfg = learning_config(tenant), scoring_config(tenant)
    try:
        window_from = now - timedelta(days=cfg.retraining.training_days)
        data = _log_window(window_from, now)
        if data["n"] < cfg.retraining.min_rows:
            raise LearningError(f"not enough scored events ({data['n']} < {cfg.retraining.min_rows})", status=409)
        labels = _labels_for(data["event_id"])
        y_all = np.array([labels.get(e, (-1, np.nan))[0] for e in data["event_id"]], dtype=np.int64)
        known = np.array([labels.get(e, (-1, np.nan))[1] for e in data["event_id"]], dtype=np.float64)
        out = train_challenger(frame=data["frame"], ts=data["ts"], y_all=y_all, known_at=known,
                               cutoff=now.timestamp(), cfg=cfg)
        model, hold_idx, y_hold = out["model"], out["hold_idx"], out["y_hold"]
        hold = _take(data["frame"], hold_idx)
        champion_row = registry.active_version()
        champion = registry.load_version(champion_row)
        threshold = scoring_cfg.consensus.review_threshold
        risk_old = _engine_for(champion, champion_row.version, scoring_cfg).score(hold).risk
        k = max(int((risk_old >= threshold).sum()), 1)
        ev_old = evaluate(y_hold, risk_old, threshold, k=k)
        from scoring.pipeline import consensus_config_for

        consensus_new = challenger_consensus(consensus_config_for(scoring_cfg), model, cfg)
        ev_new = evaluate(y_hold, _engine_for(model, -1, scoring_cfg, consensus_new).score(hold).risk, threshold, k=k)
        verdict = champion_challenger(ev_new, ev_old, tolerance=cfg.retraining.tolerance,
                                      min_positives=cfg.retraining.min_holdout_positives)
        relative = f"models/{tenant.schema_name}/job-{job.pk}-{now:%Y%m%dT%H%M%S}"
        model.save(Path(settings.MEDIA_ROOT) / relative, version=f"job-{job.pk}",
                   training_window=(data_start(data, window_from), now.isoformat()))
        metrics = {"challenger": ev_new.as_dict(), "champion": {**ev_old.as_dict(), "version": champion_row.version},
                   "threshold": threshold, "holdout_from": _iso(data["ts"][hold_idx].min()) if hold_idx.size else None,
                   "training": out["info"], "code_version": CODE_VERSION, "log_features": list(LOG_FEATURES),
                   "context_columns": list(CONTEXT_COLUMNS), "trigger": job.trigger}
        row = registry.model_register(artifact_path=relative, metrics=metrics,
                                      notes=f"retrained ({job.trigger}); {verdict.reason}")
        job.model_version, job.champion_version, job.metrics, job.verdict = (
            row.version, champion_row.version, metrics, verdict.reason)
        if verdict.promote:
            registry.model_promote(version=row.version)
            if consensus_new.detector_weights != consensus_config_for(scoring_cfg).detector_weights:
                _weights_apply(consensus_new)
            job.promoted = True
        job.status = RetrainJob.Status.DONE
    except Exception as exc:  # recorded on the job, and re-raised for anything unexpected
        job.status, job.error = RetrainJob.Status.FAILED, str(exc)[:2000]
        job.finished_at = timezone.now()
        job.save()
        if isinstance(exc, LearningError):
            return job
        raise
    job.finished_at = timezone.now()
    job.save()
    return job


def data_start(data: Mapping[str, Any], default: datetime) -> str:
    return _iso(data["ts"].min()) if data["n"] else default.isoformat()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(float(epoch), tz=UTC).isoformat()


def model_promote_request(*, version: int, by: str) -> Any:
    from scoring import registry

    try:
        row = registry.model_promote(version=version)
    except registry.RegistryError as exc:
        raise LearningError(str(exc), status=404 if "no model version" in str(exc) else 409) from exc
    log.info("model v%s promoted by %s", version, by)
    return row


def model_rollback_request(*, by: str) -> Any:
    from scoring import registry

    try:
        row = registry.model_rollback()
    except registry.RegistryError as exc:
        raise LearningError(str(exc), status=409) from exc
    log.info("model rolled back to v%s by %s", row.version, by)
    return row
