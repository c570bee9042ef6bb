"""Fraud-checks sent at the same time to a real web server (uvicorn, 8 serving threads): concurrent
checks of a tenant are stored and scored together (pulse.lib.combine), and each caller still gets
its own answer, its own errors, and nothing is lost or stored twice."""

from __future__ import annotations

import http.client
import json
import threading
import time
from urllib.parse import urlsplit

import pytest
from django.db import connection

SLUG = "fc-live"


@pytest.fixture
def live_tenant(committed_tenant):  # type: ignore[no-untyped-def]
    from ingestion.models import EventBatch
    from ingestion.tasks import batch_run

    tenant, key = committed_tenant(SLUG, name="Fraud-check live", timezone_name="UTC", currency="USD")
    yield tenant, key
    # The server handed the batches to Celery: a worker another test started may be consuming them.
    # Finish them here (a batch a worker holds is waited for), so none is touched while the schema drops.
    connection.set_tenant(tenant)
    deadline = time.monotonic() + 60
    while (pending := list(EventBatch.objects.exclude(status="done").values_list("pk", flat=True))):
        assert time.monotonic() < deadline, f"batches {pending} never finished"
        if all(batch_run(pk) == "locked" for pk in pending):
            time.sleep(0.2)


def test_concurrent_checks_each_get_their_own_answer(pulse_server, live_tenant) -> None:  # type: ignore[no-untyped-def]
    from ingestion.models import Event, EventBatch, Quarantine
    from scoring.models import Anomaly

    tenant, key = live_tenant
    url = urlsplit(pulse_server)
    callers, rounds = 12, 3
    start = threading.Barrier(callers)
    answers: dict[tuple[int, int], tuple[int, dict]] = {}

    def caller(c: int) -> None:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
        start.wait(30)
        for r in range(rounds):
            body = {"event_id": f"live-{c}-{r}", "customer_id": f"cust-{c}", "amount": "20.00", "currency": "USD",
                    "ip": f"198.51.100.{c}", "device_id": f"dev-{c}", "status": "succeeded"}
            if c == 0 and r == 1:
                body["amount"] = "-1"  # invalid: its caller gets a 400, the others are not affected
            if c == 1 and r == 2:
                body = {**body, "event_id": "live-1-0"}  # a repeat of this caller's first payment
            conn.request("POST", "/api/v1/fraud-check", body=json.dumps(body), headers=headers)
            response = conn.getresponse()
            answers[(c, r)] = (response.status, json.loads(response.read()))
        conn.close()

    threads = [threading.Thread(target=caller, args=(c,)) for c in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == callers * rounds
    for (c, r), (status, body) in answers.items():
        if (c, r) == (0, 1):
            assert status == 400 and "amount" in body["errors"], body
        elif (c, r) == (1, 2):
            assert status == 200 and body["duplicate"] is True and body["event_id"] == "live-1-0", body
        else:
            assert status == 200, body
            assert body["event_id"] == f"live-{c}-{r}" and body["decision"] == "ALLOW" and "duplicate" not in body
    connection.set_tenant(tenant)
    assert Event.objects.filter(event_id__startswith="live-").count() == callers * rounds - 2
    assert Quarantine.objects.count() == 1
    assert not Anomaly.objects.exists()
    batches = EventBatch.objects.filter(source="fraud_check")
    assert sum(b.accepted for b in batches) == callers * rounds - 2  # each stored payment once
    # Twelve callers released at once onto 8 serving threads: checks were served together (a batch
    # takes milliseconds; the others arrive meanwhile), never more than the configured batch.
    assert batches.count() < callers * rounds - 2
    assert max(b.accepted for b in batches) <= 8  # PULSE_FRAUD_CHECK_MAX_BATCH
