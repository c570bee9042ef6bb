from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from simulator.evaluate import dims_compatible, evaluate
from simulator.labels import Label

T = datetime(2024, 10, 1, tzinfo=UTC)


def at(h: float) -> datetime:
    return T + timedelta(hours=h)


def iso(h: float) -> str:
    return at(h).isoformat()


LABELS = [
    Label("L1", "checkout_outage", "kpi", at(10), at(12), metric="orders", related_metrics=("revenue",)),
    Label("L2", "campaign_break", "kpi", at(14), at(16), metric="ctr",
          dimensions={"channel": "social", "campaign": "x"}, entity="x"),
    Label("L3", "flash_sale", "kpi", at(20), at(21), metric="orders"),
    Label("F1", "card_testing", "fraud", at(1), at(1.5), entity="1.2.3.4", event_ids=("p1", "p2", "p3")),
    Label("F2", "account_takeover", "fraud", at(5), at(5), entity="cus-1", event_ids=("p9",)),
]
TRUTH = {f"p{i}": "fraud" if i in (1, 2, 3, 9) else "legit" for i in range(10)}


def kpi(h: float, metric: str, dims: dict | None = None, detected: float | None = None) -> dict:
    return {"kind": "kpi", "occurred_at": iso(h), "detected_at": iso(detected if detected is not None else h),
            "metric": metric, "dimensions": dims or {}, "entity": None, "event_ids": [], "score": 0.9,
            "severity": "high", "detectors": {"seasonal_z": 0.9}}


def txn(h: float, event_ids: list[str], entity: str | None = None) -> dict:
    return {"kind": "transaction", "occurred_at": iso(h), "detected_at": iso(h), "metric": None,
            "dimensions": {}, "entity": entity, "event_ids": event_ids, "score": 0.8, "severity": "medium",
            "detectors": {"isolation_forest": 0.8, "rules": 1.0}}


ANOMALIES = [
    kpi(10.5, "orders", detected=10 + 35 / 60),  # 0: L1
    kpi(9.5, "revenue", detected=10 + 50 / 60),  # 1: L1 (inside the tolerance before the start)
    kpi(14 + 1 / 3, "ctr", {"channel": "social"}),  # 2: L2 (coarser slice, compatible)
    kpi(14 + 1 / 3, "ctr", {"channel": "email"}),  # 3: wrong channel -> false alarm
    kpi(3, "orders"),  # 4: false alarm
    txn(1.1, ["p1", "p2", "p4"]),  # 5: F1 by event ids
    txn(5 + 1 / 6, [], entity="cus-1"),  # 6: F2 by entity
    txn(7, ["p5"]),  # 7: false alarm
]


@pytest.fixture
def result():
    return evaluate(LABELS, ANOMALIES, truth=TRUTH, tolerance=timedelta(hours=1), kpi_buckets=24)


def test_recall_per_type(result) -> None:
    r = result.per_type
    assert (r["checkout_outage"].detected, r["checkout_outage"].labels) == (1, 1)
    assert r["campaign_break"].recall == 1.0
    assert r["flash_sale"].recall == 0.0
    assert r["card_testing"].recall == 1.0 and r["account_takeover"].recall == 1.0
    assert result.matches == {"L1": [0, 1], "L2": [2], "L3": [], "F1": [5], "F2": [6]}
    assert result.unmatched == [3, 4, 7]


def test_precision_and_false_alarms(result) -> None:
    assert result.precision["kpi"] == pytest.approx(3 / 5)
    assert result.precision["fraud"] == pytest.approx(2 / 3)
    assert result.precision["all"] == pytest.approx(5 / 8)
    assert result.precision_by_metric == {"ctr": 0.5, "orders": 0.5, "revenue": 1.0}
    assert result.precision_by_detector["isolation_forest"] == pytest.approx(2 / 3)
    assert result.false_alarms_per_1000["kpi"] == pytest.approx(2 / 24 * 1000)
    assert result.false_alarms_per_1000["fraud"] == pytest.approx(2 / 10 * 1000)  # p4, p5 legit flagged


def test_event_level(result) -> None:
    e = result.event_level
    assert e["precision"] == pytest.approx(0.5) and e["recall"] == pytest.approx(0.5)
    assert e["flagged"] == 4 and e["fraud_events"] == 4 and e["evaluated_events"] == 10
    assert result.per_type["card_testing"].event_recall == pytest.approx(2 / 3)
    assert result.per_type["account_takeover"].event_recall == 0.0


def test_delay_basis() -> None:
    occ = evaluate(LABELS, ANOMALIES, kpi_buckets=24)
    det = evaluate(LABELS, ANOMALIES, kpi_buckets=24, delay_basis="detected_at")
    assert occ.per_type["checkout_outage"].delay(0.5) == 0  # the early revenue anomaly clamps to 0
    assert det.per_type["checkout_outage"].delay(0.5) == 35 * 60
    assert occ.per_type["campaign_break"].delay(0.5) == pytest.approx(20 * 60)
    assert occ.per_type["flash_sale"].delay(0.5) is None
    assert det.to_dict()["delay_basis"] == "detected_at"
    assert math.isnan(occ.false_alarms_per_1000["fraud"])  # no truth given


def test_tolerance_matters() -> None:
    tight = evaluate(LABELS, ANOMALIES, tolerance=timedelta(minutes=10), kpi_buckets=24)
    assert tight.matches["L1"] == [0]


def test_default_buckets_from_span() -> None:
    r = evaluate(LABELS, ANOMALIES, scenario_start=T, scenario_end=T + timedelta(days=2))
    assert r.kpi_buckets == 48


def test_dims_compatible() -> None:
    assert dims_compatible({"channel": "a"}, {})
    assert dims_compatible({}, {"channel": "a"})
    assert not dims_compatible({"channel": "a"}, {"channel": "b"})
    # A label's event-field name and an anomaly's KPI dimension name are the same dimension.
    assert not dims_compatible({"product_id": "SKU-4"}, {"product": "SKU-21"})
    assert dims_compatible({"product_id": "SKU-4"}, {"product": "SKU-4", "channel": "web"})
    assert not dims_compatible({"store_id": "s1"}, {"store": "s2"})


def test_empty_inputs() -> None:
    r = evaluate([], [], truth={}, kpi_buckets=10)
    assert r.counts["anomalies"] == 0 and math.isnan(r.precision["all"])
    d = r.to_dict()
    assert d["precision"]["all"] is None
