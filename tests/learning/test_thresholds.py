"""Recalibration through the service and API: the change is recorded with its expected effect, the
scoring config carries the new value, a person can pin and roll back."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from learning import services
from learning.models import Label, ScoredEvent, Threshold, ThresholdChange
from scoring.config import scoring_config
from tests.learning.factories import NOW, set_learning_config


def _log_with_labels(n: int = 3000, seed: int = 0, labelled: bool = True) -> None:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.05
    risk = np.where(y, rng.beta(5, 2, n), rng.beta(1.5, 6, n))
    ts = [NOW - timedelta(days=10) + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, 9 * 86_400, n))]
    ScoredEvent.objects.bulk_create([ScoredEvent(event_id=f"t{i}", occurred_at=ts[i], model_version=0,
                                                 risk=float(risk[i]), decision="ALLOW", features=[], context={})
                                     for i in range(n)])
    if labelled:  # analysts and chargebacks labelled a third of the events
        Label.objects.bulk_create([Label(event_id=f"t{i}", label="fraud" if y[i] else "legit", known_at=ts[i],
                                         source="bulk") for i in range(0, n, 3)])


def test_recalibration_reaches_target_precision_and_is_applied(tenant) -> None:
    _log_with_labels()
    set_learning_config(tenant.tenant, recalibration={"target": 0.8})
    changes = services.thresholds_recalibrate(now=NOW)
    assert len(changes) == 1
    ch = changes[0]
    assert ch.mode == "precision" and ch.old_value == 0.3 and ch.new_value > 0.3
    assert ch.expected_after["precision"] >= 0.8 > ch.expected_before["precision"]
    assert ch.expected_after["alerts_per_day"] < ch.expected_before["alerts_per_day"]
    assert ch.expected_after["recall"] is not None
    # the scoring path reads the tenant config: it carries the new value
    tenant.tenant.refresh_from_db()
    assert scoring_config(tenant.tenant).consensus.review_threshold == ch.new_value
    # run again: nothing left to change
    assert services.thresholds_recalibrate(now=NOW) == []
    body = tenant.client("read").get("/api/v1/thresholds").json()["results"]
    assert body[0]["value"] == ch.new_value and body[0]["last_change"]["expected_after"]["precision"] >= 0.8


def test_alert_budget_without_labels(tenant) -> None:
    _log_with_labels(labelled=False)
    set_learning_config(tenant.tenant, recalibration={"alerts_per_day": 20})
    ch = services.thresholds_recalibrate(now=NOW)[0]
    assert ch.mode == "budget" and "labels too few" in ch.reason
    assert abs(ch.expected_after["alerts_per_day"] - 20) < 1
    assert ch.expected_after["precision"] is None


def test_pin_and_rollback_through_the_api(tenant) -> None:
    _log_with_labels()
    admin = tenant.client("admin")
    change = services.thresholds_recalibrate(now=NOW)[0]
    # read keys cannot act
    assert tenant.client("read").post(f"/api/v1/thresholds/changes/{change.pk}/rollback").status_code == 403
    r = admin.post(f"/api/v1/thresholds/changes/{change.pk}/rollback")
    assert r.status_code == 200, r.content
    assert r.json()["action"] == "rolled_back" and r.json()["new_value"] == 0.3
    row = Threshold.objects.get()
    assert row.value == 0.3 and row.pinned
    tenant.tenant.refresh_from_db()
    assert scoring_config(tenant.tenant).consensus.review_threshold == 0.3
    assert admin.post(f"/api/v1/thresholds/changes/{change.pk}/rollback").status_code == 409
    # pinned: recalibration leaves it alone
    assert services.thresholds_recalibrate(now=NOW) == []
    # a person sets a value; out-of-range values are refused; then releases it
    r = admin.post(f"/api/v1/thresholds/{row.pk}/pin", {"value": 0.42}, format="json")
    assert r.status_code == 200 and r.json()["value"] == 0.42 and r.json()["pinned"]
    assert admin.post(f"/api/v1/thresholds/{row.pk}/pin", {"value": 0.9}, format="json").status_code == 400
    assert admin.post(f"/api/v1/thresholds/{row.pk}/pin", {"pinned": False}, format="json").json()["pinned"] is False
    assert len(services.thresholds_recalibrate(now=NOW)) == 1
    history = admin.get("/api/v1/thresholds/history").json()["results"]
    assert [h["action"] for h in history] == ["recalibrated", "unpinned", "pinned", "rolled_back", "recalibrated"]
    assert ThresholdChange.objects.count() == 5
    assert admin.post("/api/v1/thresholds/changes/99999/rollback").status_code == 404
