"""GET /api/v1/anomalies (DESIGN.md filters, newest first, cursor pagination) and /anomalies/{id}."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scoring.models import Anomaly

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _make(i: int, **kw) -> Anomaly:  # type: ignore[no-untyped-def]
    fields = {"kind": "transaction", "occurred_at": T0 + timedelta(hours=i), "detected_at": T0 + timedelta(hours=i),
              "entity": f"cust-{i}", "score": 0.5, "severity": "medium", "decision": "REVIEW",
              "detectors": {"robust_z": 0.2, "iqr": 0.1}, "event_ids": [f"ev-{i}"],
              "reasons": [{"detector": "rule:velocity_count_1h", "text": "more than 5 transactions in an hour",
                           "value": 7, "threshold": 5}]}
    fields.update(kw)
    return Anomaly(**fields)


@pytest.fixture
def anomalies(tenant_a):  # type: ignore[no-untyped-def]
    rows = [_make(i) for i in range(6)]
    rows += [
        _make(6, kind="kpi", metric="revenue", entity="", severity="high", detectors={"seasonal_z": 0.99},
              reasons=[{"detector": "seasonal_z", "text": "revenue 40% below the usual", "value": 60,
                        "threshold": 90}]),
        _make(7, severity="critical", decision="BLOCK", entity="203.0.113.9", status="acknowledged",
              reasons=[{"detector": "rule:shared_ip", "text": "3 or more customers on one IP in 24 h", "value": 4,
                        "threshold": 3}]),
        _make(8, severity="low", entity="cust-low"),
    ]
    return Anomaly.objects.bulk_create(rows)


def _get(tenant, query: str = "") -> dict:  # type: ignore[no-untyped-def]
    response = tenant.client("read").get(f"/api/v1/anomalies{query}")
    assert response.status_code == 200, response.content
    return response.json()


def test_list_is_newest_first_in_the_anomaly_shape(tenant_a, anomalies):
    results = _get(tenant_a)["results"]
    assert [r["id"] for r in results] == [a.pk for a in reversed(anomalies)]
    assert set(results[0]) >= {"id", "kind", "occurred_at", "detected_at", "metric", "dimensions", "entity",
                               "event_ids", "score", "severity", "direction", "expected", "observed", "impact",
                               "reasons", "detectors", "status", "feedback"}


@pytest.mark.parametrize(("query", "expected"), [
    ("?kind=kpi", [6]),
    ("?severity=high", [7, 6]),
    ("?severity=critical", [7]),
    ("?detector=seasonal_z", [6]),
    ("?detector=rule:shared_ip", [7]),
    ("?metric=revenue", [6]),
    ("?entity=cust-3", [3]),
    ("?status=acknowledged", [7]),
    ("?q=BELOW the usual", [6]),
    ("?q=203.0.113", [7]),
    ("?from=2026-03-02T14:00:00Z&to=2026-03-02T16:00:00Z", [3, 2]),
    ("?kind=transaction&severity=medium&q=velocity", [5, 4, 3, 2, 1, 0]),
])
def test_filters(tenant_a, anomalies, query, expected):
    got = [r["id"] for r in _get(tenant_a, query)["results"]]
    assert got == [anomalies[i].pk for i in expected]


def test_cursor_pagination_walks_everything_once(tenant_a, anomalies):
    seen, query = [], "?limit=4"
    while True:
        page = _get(tenant_a, query)
        seen += [r["id"] for r in page["results"]]
        if not page["next_cursor"]:
            break
        query = f"?limit=4&cursor={page['next_cursor']}"
    assert seen == [a.pk for a in reversed(anomalies)]


@pytest.mark.parametrize("query", ["?severity=huge", "?kind=magic", "?status=gone", "?from=soon", "?cursor=zzz",
                                   "?limit=0"])
def test_bad_filters_are_400(tenant_a, query):
    response = tenant_a.client("read").get(f"/api/v1/anomalies{query}")
    assert response.status_code == 400, response.content


def test_detail(tenant_a, anomalies):
    response = tenant_a.client("read").get(f"/api/v1/anomalies/{anomalies[7].pk}")
    assert response.status_code == 200 and response.json()["entity"] == "203.0.113.9"
    assert tenant_a.client("read").get("/api/v1/anomalies/999999999").status_code == 404
