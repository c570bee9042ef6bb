"""Feedback on anomalies and bulk labels: history, Anomaly.feedback, counts of flagged, missed, unknown."""

from __future__ import annotations

from datetime import UTC, datetime

from learning.models import Label, LabelHistory
from scoring.models import Anomaly


def _anomaly(event_ids: list[str]) -> Anomaly:
    return Anomaly.objects.create(kind="transaction", occurred_at=datetime(2024, 9, 1, tzinfo=UTC), entity="cus-1",
                                  event_ids=event_ids, score=0.8, severity="high", direction="up")


def _events(*ids: str) -> None:
    from ingestion.models import EventKey

    EventKey.objects.bulk_create([EventKey(event_id=i, batch_id=1) for i in ids])


def test_feedback_updates_anomaly_keeps_history_and_labels_events(tenant, triage_client) -> None:
    anomaly = _anomaly(["e1", "e2"])
    r = triage_client.post(f"/api/v1/anomalies/{anomaly.pk}/feedback", {"label": "true_positive", "note": "card ring"},
                           format="json")
    assert r.status_code == 200, r.content
    anomaly.refresh_from_db()
    assert anomaly.feedback["label"] == "true_positive" and anomaly.feedback["note"] == "card ring"
    assert anomaly.feedback["by"] and anomaly.feedback["at"]
    assert set(Label.objects.values_list("event_id", "label")) == {("e1", "fraud"), ("e2", "fraud")}
    # a second opinion: latest wins, history keeps both
    r = triage_client.post(f"/api/v1/anomalies/{anomaly.pk}/feedback", {"label": "false_positive"}, format="json")
    assert r.status_code == 200
    assert set(Label.objects.values_list("label", flat=True)) == {"legit"}
    assert list(LabelHistory.objects.filter(anomaly_id=anomaly.pk).values_list("label", flat=True)) == [
        "false_positive", "true_positive"]


def test_feedback_errors_and_permissions(tenant) -> None:
    anomaly = _anomaly(["e1"])
    read = tenant.client("read")
    assert read.post(f"/api/v1/anomalies/{anomaly.pk}/feedback", {"label": "true_positive"},
                     format="json").status_code == 403
    admin = tenant.client("admin")
    bad = admin.post(f"/api/v1/anomalies/{anomaly.pk}/feedback", {"label": "maybe"}, format="json")
    assert bad.status_code == 400 and "label" in bad.json()["errors"]
    assert admin.post("/api/v1/anomalies/999999/feedback", {"label": "true_positive"}, format="json").status_code == 404


def test_bulk_labels_count_flagged_missed_and_unknown(tenant, triage_client) -> None:
    _events("p1", "p2", "p3", "p4")
    _anomaly(["p1"])
    _anomaly(["p4"])
    body = {"labels": [
        {"event_id": "p1", "label": "fraud", "known_at": "2024-09-08T00:00:00Z"},  # flagged and fraud
        {"event_id": "p2", "label": "fraud"},  # never flagged: a miss
        {"event_id": "p3", "label": "legit"},
        {"event_id": "p4", "label": "legit"},  # flagged but legit: a false positive
        {"event_id": "nope", "label": "fraud"},
    ]}
    r = triage_client.post("/api/v1/labels", body, format="json")
    assert r.status_code == 200, r.content
    c = r.json()
    assert (c["matched_flagged"], c["false_positives"], c["missed"], c["legit_unflagged"], c["unknown_event_ids"]) == (
        2, 1, 1, 1, 1)
    assert c["fraud"] == 3 and c["legit"] == 2 and c["received"] == 5
    p1 = Label.objects.get(event_id="p1")
    assert p1.flagged and p1.known_at == datetime(2024, 9, 8, tzinfo=UTC)
    # a later file corrects a label: one row per event, history of both
    triage_client.post("/api/v1/labels", {"labels": [{"event_id": "p2", "label": "legit"}]}, format="json")
    assert Label.objects.get(event_id="p2").label == "legit"
    assert LabelHistory.objects.filter(event_id="p2").count() == 2


def test_bulk_labels_validation(tenant, triage_client) -> None:
    r = triage_client.post("/api/v1/labels", {"labels": [{"event_id": "x", "label": "bad"}]}, format="json")
    assert r.status_code == 400 and "labels" in r.json()["errors"]
    assert triage_client.post("/api/v1/labels", {"labels": []}, format="json").status_code == 400
    assert triage_client.post("/api/v1/labels", "not json", content_type="application/json").status_code == 400
    assert tenant.client("read").post("/api/v1/labels", {"labels": [{"event_id": "x", "label": "fraud"}]},
                                      format="json").status_code == 403
