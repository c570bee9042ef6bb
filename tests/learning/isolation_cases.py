"""Tenant A's key never sees or changes tenant B's labels, feedback, thresholds, drift reports,
retraining jobs or models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.isolation import IsolationCase

T = datetime(2024, 9, 1, tzinfo=UTC)


def _seed_anomaly(b: Any) -> dict[str, Any]:
    from scoring.models import Anomaly

    a = Anomaly.objects.create(kind="transaction", occurred_at=T, entity="b-only-customer", event_ids=["b-only-event"],
                               score=0.9, severity="high", direction="up")
    return {"id": a.pk, "markers": ["b-only-customer", "b-only-event"]}


def _anomaly_unchanged(b: Any, ctx: dict[str, Any]) -> None:
    from learning.models import Label
    from scoring.models import Anomaly

    assert Anomaly.objects.get(pk=ctx["id"]).feedback is None
    assert not Label.objects.exists()


def _seed_label(b: Any) -> dict[str, Any]:
    from ingestion.models import EventKey
    from learning.models import Label

    EventKey.objects.create(event_id="b-only-event", batch_id=1)
    Label.objects.create(event_id="b-only-event", label="legit", known_at=T, source="bulk", by="b-only-person")
    return {"markers": ["b-only-person"]}


def _label_unchanged(b: Any, ctx: dict[str, Any]) -> None:
    from learning.models import Label

    assert Label.objects.get(event_id="b-only-event").label == "legit"


def _seed_threshold(b: Any) -> dict[str, Any]:
    from learning.models import Threshold, ThresholdChange

    row = Threshold.objects.create(detector="consensus", metric="review_threshold", value=0.123456, pinned=True,
                                   pinned_by="b-only-person")
    change = ThresholdChange.objects.create(threshold=row, action="recalibrated", old_value=0.3, new_value=0.123456,
                                            reason="b-only-reason", by="b-only-person")
    return {"id": row.pk, "change_id": change.pk, "markers": ["0.123456", "b-only-reason", "b-only-person"]}


def _threshold_unchanged(b: Any, ctx: dict[str, Any]) -> None:
    from learning.models import Threshold, ThresholdChange

    row = Threshold.objects.get(pk=ctx["id"])
    assert row.value == 0.123456 and row.pinned and row.pinned_by == "b-only-person"
    assert ThresholdChange.objects.count() == 1


def _seed_drift(b: Any) -> dict[str, Any]:
    from learning.models import DriftReport

    DriftReport.objects.create(model_version=0, level="major", reference_from=T, reference_to=T, recent_from=T,
                               recent_to=T, notes=["b-only-note"])
    return {"markers": ["b-only-note"]}


def _seed_models(b: Any) -> dict[str, Any]:
    from learning.models import RetrainJob
    from scoring.models import ModelVersion

    ModelVersion.objects.create(version=5, kind="tenant", status="candidate", artifact_path="models/b-only-path",
                                sha256="b0" * 32, code_version="x", notes="b-only-model")
    ModelVersion.objects.create(version=4, kind="tenant", status="active", artifact_path="models/b-only-active",
                                sha256="b1" * 32, code_version="x", notes="b-only-active-model")
    RetrainJob.objects.create(trigger="request", requested_by="b-only-requester", verdict="b-only-verdict")
    return {"version": 5, "markers": ["b-only-model", "b-only-path", "b0" * 32, "b-only-requester", "b-only-verdict"]}


def _models_unchanged(b: Any, ctx: dict[str, Any]) -> None:
    from learning.models import RetrainJob
    from scoring.models import ModelVersion

    assert ModelVersion.objects.get(version=5).status == "candidate"
    assert ModelVersion.objects.get(version=4).status == "active"
    assert RetrainJob.objects.count() == 1


ISOLATION_CASES = [
    IsolationCase("learning: anomaly feedback", "post", lambda c: f"/api/v1/anomalies/{c['id']}/feedback", _seed_anomaly,
                  body={"label": "true_positive", "note": "from A"}, allowed_status=(404,), verify_b=_anomaly_unchanged),
    IsolationCase("learning: bulk labels", "post", lambda c: "/api/v1/labels", _seed_label,
                  body={"labels": [{"event_id": "b-only-event", "label": "fraud"}]}, allowed_status=(200,),
                  verify_b=_label_unchanged),
    IsolationCase("learning: thresholds", "get", lambda c: "/api/v1/thresholds", _seed_threshold),
    IsolationCase("learning: threshold history", "get", lambda c: "/api/v1/thresholds/history", _seed_threshold),
    IsolationCase("learning: threshold pin", "post", lambda c: f"/api/v1/thresholds/{c['id']}/pin", _seed_threshold,
                  body={"value": 0.2}, allowed_status=(404,), verify_b=_threshold_unchanged),
    IsolationCase("learning: threshold rollback", "post",
                  lambda c: f"/api/v1/thresholds/changes/{c['change_id']}/rollback", _seed_threshold,
                  allowed_status=(404,), verify_b=_threshold_unchanged),
    IsolationCase("learning: recalibrate", "post", lambda c: "/api/v1/thresholds/recalibrate", _seed_threshold,
                  allowed_status=(200,), verify_b=_threshold_unchanged),
    IsolationCase("learning: drift reports", "get", lambda c: "/api/v1/drift-reports", _seed_drift),
    IsolationCase("learning: models", "get", lambda c: "/api/v1/models", _seed_models),
    IsolationCase("learning: model promote", "post", lambda c: f"/api/v1/models/{c['version']}/promote", _seed_models,
                  allowed_status=(404,), verify_b=_models_unchanged),
    IsolationCase("learning: model rollback", "post", lambda c: "/api/v1/models/rollback", _seed_models,
                  allowed_status=(409,), verify_b=_models_unchanged),
    IsolationCase("learning: retrain jobs", "get", lambda c: "/api/v1/models/retrain", _seed_models),
    IsolationCase("learning: retrain request", "post", lambda c: "/api/v1/models/retrain", _seed_models,
                  allowed_status=(202,), verify_b=_models_unchanged),
]
