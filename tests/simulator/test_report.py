from __future__ import annotations

import json
from datetime import timedelta

import pytest

from simulator.__main__ import main
from simulator.evaluate import evaluate
from simulator.report import plot_series, write_report
from simulator.series import kpi_series
from tests.simulator._scenarios import small, small_events

PNG = b"\x89PNG\r\n\x1a\n"


def _anomalies() -> list[dict]:
    """One true detection per KPI label (at its start) and one false alarm."""
    out = [{"kind": "kpi", "occurred_at": (lab.start + timedelta(minutes=30)).isoformat(),
            "detected_at": (lab.start + timedelta(minutes=31)).isoformat(), "metric": lab.metric,
            "dimensions": lab.dimensions, "entity": None, "event_ids": [], "score": 0.9, "severity": "high",
            "detectors": {"seasonal_z": 0.9}} for lab in small().labels if lab.kind == "kpi"]
    out.append({"kind": "kpi", "occurred_at": (small().start + timedelta(hours=5)).isoformat(),
                "metric": "orders", "dimensions": {}, "detectors": {"seasonal_z": 0.7}})
    return out


def test_kpi_series_sees_the_outage() -> None:
    s = small()
    series = kpi_series(small_events(), "orders", start=s.start, end=s.end)
    assert len(series) == 72
    outage = next(lab for lab in s.labels if lab.type == "checkout_outage")
    during = [v for t, v in series if outage.start <= t < outage.end]
    day_before = [v for t, v in series if outage.start - timedelta(days=1) <= t < outage.end - timedelta(days=1)]
    assert sum(during) < 0.3 * sum(day_before)
    ctr = kpi_series(small_events(), "ctr", start=s.start, end=s.end, filters={"campaign": "brand_search"})
    assert all(0 <= v <= 1 for _, v in ctr if v == v)
    with pytest.raises(ValueError):
        kpi_series([], "nope", start=s.start, end=s.end)


def test_plot_and_report_written(tmp_path) -> None:
    s = small()
    anomalies = _anomalies()
    result = evaluate(s.labels, anomalies, truth=s.truth, scenario_start=s.start, scenario_end=s.end)
    assert result.per_type["checkout_outage"].recall == 1.0
    series = {m: kpi_series(small_events(), m, start=s.start, end=s.end) for m in ("orders", "ctr")}
    paths = write_report(result, tmp_path, labels=s.labels, anomalies=anomalies, series=series,
                         title="small", meta={"scenario": "small"})
    assert paths["plot_orders"].read_bytes()[:8] == PNG and paths["plot_ctr"].stat().st_size > 5000
    md = paths["markdown"].read_text()
    assert "| checkout_outage | kpi | 1 | 1 | 100% |" in md
    assert "![plot_orders](plot_orders.png)" in md
    assert "occurred_at" in md  # the delay basis is stated


def test_plot_series_accepts_string_times(tmp_path) -> None:
    pts = [("2024-01-01T00:00:00+00:00", 1.0), ("2024-01-01T01:00:00+00:00", float("nan"))]
    p = plot_series(pts, tmp_path / "p.png", metric="orders",
                    anomalies=[{"occurred_at": "2024-01-01T00:30:00+00:00", "metric": "orders"}])
    assert p.read_bytes()[:8] == PNG


def test_cli_generate_and_evaluate(tmp_path, capsys) -> None:
    assert main(["generate", "--scenario", "small", "--out", str(tmp_path / "g")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["events"] == len(small().events)
    (tmp_path / "a.json").write_text(json.dumps({"results": _anomalies()}))
    assert main(["evaluate", "--labels", str(tmp_path / "g" / "labels.json"), "--anomalies",
                 str(tmp_path / "a.json"), "--events", str(tmp_path / "g" / "events.ndjson"),
                 "--plot", "orders", "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.md").exists() and (tmp_path / "r" / "plot_orders.png").exists()
