"""Drift reports and retraining: champion/challenger on a held-out recent window, promotion only when
not worse, rollback, corrupted artifacts refused, labels from the future never used."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings

from learning import services
from learning.models import Label, RetrainJob
from scoring import registry
from scoring.models import Anomaly, ModelVersion
from tests.learning.factories import NOW, chargebacks, scored_log, set_learning_config

FAST = {"min_rows": 500, "supervised_min_positives": 20, "n_estimators": 50, "min_holdout_positives": 5}


def _labels(rows: list[dict]) -> None:
    Label.objects.bulk_create([Label(event_id=r["event_id"], label=r["label"], known_at=r["known_at"], source="bulk")
                               for r in rows])


def _retrain() -> RetrainJob:
    job = services.retrain_request(trigger="request", by="test")
    return services.retrain_run(job_id=job.pk, now=NOW)


def test_drift_on_shifted_distribution_raises_anomaly_and_requests_retraining(tenant) -> None:
    set_learning_config(tenant.tenant, drift={"min_rows": 200})
    scored_log(n=2000, days=21, end=NOW - timedelta(days=7), seed=1, prefix="ref")
    scored_log(n=800, days=7, end=NOW, seed=2, shift=0.6, prefix="rec")
    report = services.drift_check(now=NOW)
    assert report.level == "major" and report.n_reference == 2000 and report.n_recent == 800
    assert report.features[0]["level"] == "major"
    anomaly = Anomaly.objects.get(pk=report.anomaly_id)
    assert anomaly.kind == "drift" and anomaly.reasons
    assert report.retrain_job is not None and report.retrain_job.trigger == "drift"
    body = tenant.client("read").get("/api/v1/drift-reports").json()["results"]
    assert body[0]["level"] == "major" and body[0]["retrain_job"] == report.retrain_job.pk


def test_no_drift_on_stable_distribution(tenant) -> None:
    set_learning_config(tenant.tenant, drift={"min_rows": 200})
    scored_log(n=2000, days=21, end=NOW - timedelta(days=7), seed=1, prefix="ref")
    scored_log(n=800, days=7, end=NOW, seed=2, prefix="rec")
    report = services.drift_check(now=NOW)
    assert report.level == "none", [(f["name"], f["psi"], f["ks"]) for f in report.features[:3]]
    assert report.anomaly_id is None and report.retrain_job is None
    assert not Anomaly.objects.filter(kind="drift").exists()


def test_retraining_promotes_better_refuses_worse_and_rolls_back(tenant) -> None:
    set_learning_config(tenant.tenant, retraining=FAST)
    log = scored_log(n=4000, days=28, seed=3)
    _labels(chargebacks(log))
    job = _retrain()
    assert job.status == "done", job.error
    assert job.promoted and job.champion_version == 0 and job.model_version == 1, (job.verdict, job.metrics)
    m = job.metrics
    assert m["training"]["supervised"] and m["challenger"]["average_precision"] > 2 * m["champion"]["average_precision"]
    row = ModelVersion.objects.get(version=1)
    assert row.status == "active" and row.sha256 and row.features and row.code_version and row.training_from
    assert "supervised_gbm" in [d.name for d in registry.load_version(row).detectors]
    # the promoted model's probability counts in full in the scoring consensus
    from scoring.config import scoring_config

    tenant.tenant.refresh_from_db()
    assert scoring_config(tenant.tenant).consensus.detector_weights == {"supervised_gbm": 1.0}

    # a challenger without the supervised model is worse on the held-out window: registered, not promoted
    set_learning_config(tenant.tenant, retraining={**FAST, "supervised_min_positives": 100_000})
    worse = _retrain()
    assert worse.status == "done" and not worse.promoted and worse.model_version == 2
    assert "champion" in worse.verdict or "<" in worse.verdict
    assert ModelVersion.objects.get(version=2).status == "candidate"
    assert registry.active_version().version == 1

    admin = tenant.client("admin")
    listing = admin.get("/api/v1/models").json()["results"]
    assert [(r["version"], r["status"]) for r in listing] == [(2, "candidate"), (1, "active"), (0, "retired")]
    assert listing[1]["metrics"]["challenger"]["average_precision"] > 0
    assert tenant.client("read").post("/api/v1/models/rollback").status_code == 403
    r = admin.post("/api/v1/models/rollback")
    assert r.status_code == 200 and r.json()["version"] == 0
    assert registry.active_version().version == 0
    assert admin.post("/api/v1/models/1/promote").json()["status"] == "active"
    assert admin.post("/api/v1/models/77/promote").status_code == 404


def test_corrupted_artifact_is_refused(tenant) -> None:
    set_learning_config(tenant.tenant, retraining=FAST)
    log = scored_log(n=3000, days=28, seed=4)
    _labels(chargebacks(log))
    job = _retrain()
    assert job.promoted
    registry.model_rollback()
    row = ModelVersion.objects.get(version=job.model_version)
    npz = Path(settings.MEDIA_ROOT) / (row.artifact_path + ".npz")
    data = bytearray(npz.read_bytes())
    data[len(data) // 3] ^= 0xFF
    npz.write_bytes(bytes(data))
    registry._cache.clear()
    r = tenant.client("admin").post(f"/api/v1/models/{row.version}/promote")
    assert r.status_code == 409 and "checksum" in r.json()["detail"]
    assert registry.active_version().version == 0


def test_labels_from_the_future_are_not_used(tenant) -> None:
    set_learning_config(tenant.tenant, retraining=FAST)
    log = scored_log(n=3000, days=28, seed=5)
    # every chargeback arrives after the training cutoff
    _labels([{**r, "known_at": NOW + timedelta(days=1)} for r in chargebacks(log)])
    job = _retrain()
    t = job.metrics["training"]
    assert t["known_fraud_train"] == 0 and t["future_labels_ignored"] > 20 and not t["supervised"]
    assert job.metrics["challenger"]["n_positives"] == 0
    assert not job.promoted  # no known fraud in the held-out window: cannot tell, champion kept


def test_retrain_request_api_queues_one_job(tenant) -> None:
    admin = tenant.client("admin")
    r = admin.post("/api/v1/models/retrain")
    assert r.status_code == 202 and r.json()["status"] == "queued" and r.json()["trigger"] == "request"
    assert admin.post("/api/v1/models/retrain").json()["id"] == r.json()["id"]  # one at a time
    assert admin.get("/api/v1/models/retrain").json()["results"][0]["id"] == r.json()["id"]
    # too little data: the job fails with a reason, no 500, nothing registered
    job = services.retrain_run(job_id=r.json()["id"], now=NOW)
    assert job.status == "failed" and "not enough" in job.error
    assert not ModelVersion.objects.filter(kind="tenant").exists()


@pytest.fixture(autouse=True)
def _fresh_registry_cache():
    registry._cache.clear()
    yield
    registry._cache.clear()


def test_a_job_whose_worker_died_does_not_block_retraining(tenant, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    from django.utils import timezone

    stuck = RetrainJob.objects.create(trigger="schedule", status=RetrainJob.Status.RUNNING,
                                      started_at=timezone.now() - timedelta(hours=2))
    fresh = services.retrain_request(trigger="request", by="test")
    stuck.refresh_from_db()
    assert stuck.status == "failed" and "worker died" in stuck.error
    assert fresh.pk != stuck.pk and fresh.status == "queued"


def test_a_queued_job_whose_message_was_lost_is_queued_again(tenant, django_capture_on_commit_callbacks,
                                                              monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from django.utils import timezone

    lost = RetrainJob.objects.create(trigger="schedule", created_at=timezone.now() - timedelta(hours=1))
    sent: list[int] = []
    monkeypatch.setattr("learning.tasks.retrain_run.delay", lambda job_id: sent.append(job_id))
    with django_capture_on_commit_callbacks(execute=True):
        job = services.retrain_request(trigger="request", by="test")
    assert job.pk == lost.pk and sent == [lost.pk]  # one job at a time, and it will run
