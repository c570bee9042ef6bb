"""Tenant isolation cases of the scoring endpoints (run by tests/tenants/test_isolation.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from tests.isolation import IsolationCase

# Unique per test process: Redis state is not rolled back with the database between runs.
RUN = uuid.uuid4().hex[:8]
SHARED_CUSTOMER = f"shared-cust-{RUN}"


def _seed_anomaly(b: Any) -> dict[str, Any]:
    from django.utils import timezone

    from scoring.models import Anomaly

    anomaly = Anomaly.objects.create(kind="transaction", occurred_at=timezone.now(), entity="b-secret-entity",
                                     score=0.9, severity="high", event_ids=["b-secret-event-id"],
                                     reasons=[{"detector": "rule:x", "text": "b-secret-reason", "value": 1,
                                               "threshold": 0}])
    return {"anomaly_id": anomaly.pk, "markers": ["b-secret-entity", "b-secret-event-id", "b-secret-reason"]}


def _seed_rule(b: Any) -> dict[str, Any]:
    from scoring.services import rule_create

    rule = rule_create(definition={"name": "b_secret_rule", "description": "b-secret-description", "score": 0.5,
                                   "severity": "low", "condition": {"feature": "amount_tenant", "op": ">",
                                                                    "value": 12345}}, changed_by="b-secret-author")
    return {"rule_id": rule.pk, "markers": ["b_secret_rule", "b-secret-description", "b-secret-author", "12345"]}


def _seed_rule_name_only(b: Any) -> dict[str, Any]:
    ctx = _seed_rule(b)
    return {**ctx, "markers": ["b-secret-description", "b-secret-author", "12345"]}


def _rule_untouched(b: Any, ctx: dict[str, Any]) -> None:
    from scoring.models import Rule

    rule = Rule.objects.get(pk=ctx["rule_id"])
    assert (rule.version, rule.score, rule.enabled) == (1, 0.5, True)


def _seed_payments(b: Any) -> dict[str, Any]:
    from tests.scoring.fraud_helpers import ingest_and_consume, payment, recent

    events = [payment(f"b-secret-pay-{RUN}-{i}", recent(0.5) + timedelta(minutes=i), customer=SHARED_CUSTOMER,
                      amount=700, ip="192.0.2.77", device="b-secret-device") for i in range(6)]
    ingest_and_consume(b.tenant, events)
    # A's answer must not show B's events, and A's features must not count them: in B's state
    # SHARED_CUSTOMER has 6 payments in the hour (velocity rule, shared amount), in A's none.
    return {"markers": ["b-secret-pay", "b-secret-device", "rule:velocity_count_1h", "rule:velocity_amount_1h"]}


def _b_state_untouched(b: Any, ctx: dict[str, Any]) -> None:
    from ingestion.models import Event
    from scoring.models import Anomaly

    assert not Event.objects.filter(event_id=f"a-check-{RUN}").exists()
    assert not Anomaly.objects.filter(event_ids__0=f"a-check-{RUN}").exists()


ISOLATION_CASES = [
    IsolationCase("list anomalies", "get", lambda ctx: "/api/v1/anomalies", _seed_anomaly),
    IsolationCase("anomalies by B's entity", "get", lambda ctx: "/api/v1/anomalies?entity=b-secret-entity",
                  _seed_anomaly),
    IsolationCase("anomalies search B's reason", "get", lambda ctx: "/api/v1/anomalies?q=b-secret", _seed_anomaly),
    IsolationCase("B's anomaly", "get", lambda ctx: f"/api/v1/anomalies/{ctx['anomaly_id']}", _seed_anomaly,
                  allowed_status=(404,)),
    IsolationCase("list rules", "get", lambda ctx: "/api/v1/rules", _seed_rule),
    IsolationCase("B's rule", "get", lambda ctx: f"/api/v1/rules/{ctx['rule_id']}", _seed_rule, allowed_status=(404,)),
    IsolationCase("B's rule versions", "get", lambda ctx: f"/api/v1/rules/{ctx['rule_id']}/versions", _seed_rule,
                  allowed_status=(404,)),
    IsolationCase("patch B's rule", "patch", lambda ctx: f"/api/v1/rules/{ctx['rule_id']}", _seed_rule,
                  body={"score": 0.9, "enabled": False}, allowed_status=(404,), verify_b=_rule_untouched),
    IsolationCase("delete B's rule", "delete", lambda ctx: f"/api/v1/rules/{ctx['rule_id']}", _seed_rule,
                  allowed_status=(404,), verify_b=_rule_untouched),
    # Names are unique per tenant: B's rule neither blocks A's nor changes.
    IsolationCase("create a rule named like B's", "post", lambda ctx: "/api/v1/rules", _seed_rule_name_only,
                  body={"name": "b_secret_rule", "score": 0.1, "severity": "low",
                        "condition": {"feature": "cust_count_1h", "op": ">", "value": 50}},
                  allowed_status=(201,), verify_b=_rule_untouched),
    IsolationCase("dry-run over B's payments", "post", lambda ctx: "/api/v1/rules/dry-run", _seed_payments,
                  body={"rule": {"name": "everything", "score": 0.1, "severity": "low",
                                 "condition": {"feature": "amount_tenant", "op": ">=", "value": 0}}, "days": 2}),
    IsolationCase("fraud-check a customer B also has", "post", lambda ctx: "/api/v1/fraud-check", _seed_payments,
                  body={"event_id": f"a-check-{RUN}", "amount": "700", "customer_id": SHARED_CUSTOMER,
                        "ip": "192.0.2.77", "device_id": "a-device"},
                  verify_b=_b_state_untouched),
]
