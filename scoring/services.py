"""Writes of the scoring layer. Every detector records anomalies through `anomalies_record`, which
writes them in bulk and hands them to delivery after the transaction commits."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from .models import Anomaly


def anomalies_record(*, anomalies: Sequence[Anomaly]) -> list[Anomaly]:
    """Bulk-insert unsaved Anomaly instances; delivery (alerts, live feed) starts after commit."""
    if not anomalies:
        return []
    for anomaly in anomalies:
        if not anomaly.fingerprint:
            anomaly.fingerprint = anomaly_fingerprint(anomaly)
    created = Anomaly.objects.bulk_create(list(anomalies))
    ids = [a.pk for a in created]

    def hand_over() -> None:
        from alerts.tasks import anomalies_dispatch

        anomalies_dispatch.delay(ids)

    transaction.on_commit(hand_over)
    return created


def anomaly_fingerprint(anomaly: Anomaly) -> str:
    detector = max(anomaly.detectors, key=anomaly.detectors.get) if anomaly.detectors else "consensus"
    subject = anomaly.metric or anomaly.entity
    dims = ",".join(f"{k}={v}" for k, v in sorted((anomaly.dimensions or {}).items()))
    return f"{anomaly.kind}:{detector}:{subject}:{dims}"[:200]
