"""The whole hand-off with a real Celery worker process: anomalies recorded in tenant A are dispatched
by `alerts.tasks.anomalies_dispatch` in A's schema and delivered to A's webhook after commit."""

from __future__ import annotations

import time

from django_tenants.utils import schema_context

from tests.alerts.conftest import make_anomaly


def _cleanup(schema: str) -> None:
    from alerts.models import Alert, Channel, FeedMessage, Policy
    from scoring.models import Anomaly

    with schema_context(schema):
        Channel.objects.all().delete()
        Policy.objects.all().delete()
        Alert.objects.all().delete()
        Anomaly.objects.filter(fingerprint__startswith="worker-test").delete()
        FeedMessage.objects.all().delete()


def test_anomalies_reach_the_webhook_through_a_real_worker(celery_worker_process, tenant_world, live_db, receiver) -> None:  # type: ignore[no-untyped-def]
    from alerts.models import Delivery
    from alerts.services import channel_create, policy_create
    from scoring.services import anomalies_record

    a, b = tenant_world["a"], tenant_world["b"]
    _cleanup(a.schema)
    try:
        with schema_context(b.schema):  # B has a channel too: it must get nothing
            channel_b = channel_create(kind="webhook", name="b", config={"url": receiver.url + "/b"})
            policy_create(name="b", channels=[channel_b], min_severity="low")
        with schema_context(a.schema):
            channel = channel_create(kind="webhook", name="a", config={"url": receiver.url + "/a"})
            policy_create(name="a", channels=[channel], min_severity="low")
            # Autocommit: the on-commit hand-off enqueues at once.
            anomalies_record(anomalies=[make_anomaly(fingerprint="worker-test-1"), make_anomaly(fingerprint="worker-test-1")])
        (req,) = receiver.wait_for(1, timeout=30)
        assert req.path == "/hook/a"
        body = req.json()
        assert body["type"] == "alert.opened" and body["tenant"] == a.slug and body["alert"]["count"] == 2
        deadline = time.monotonic() + 10
        with schema_context(a.schema):
            while time.monotonic() < deadline and not Delivery.objects.filter(status="sent").exists():
                time.sleep(0.1)
            delivery = Delivery.objects.get()
            assert delivery.status == "sent" and str(delivery.key) == req.headers["x-pulse-delivery"]
        time.sleep(0.3)
        assert len(receiver.requests) == 1
    finally:
        _cleanup(a.schema)
        _cleanup(b.schema)
