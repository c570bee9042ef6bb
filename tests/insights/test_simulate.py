"""`manage.py simulate` and `evaluate_scenario` against a real server (daphne on the test database)."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from simulator import generate, load_config
from simulator.io import read_labels
from tests.insights.conftest import tenant_sql

# A few hundred events: enough to cross batch boundaries, cheap enough for every `make test`.
TINY = """
name: tiny
seed: 5
start: "2024-10-14T00:00:00+00:00"
days: {days}
timezone: UTC
currency: USD
catalogue: {{n_products: 10}}
customers: {{initial_customers: 300}}
traffic: {{sessions_per_day: 1200}}
fraud:
  - {{id: ct-1, type: card_testing, at: 10m, duration: 10m, attempts: 12}}
"""


def tiny(tmp_path: Path, days: float = 0.1) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.format(days=days))
    return path


def run(*args: str) -> dict:
    out = io.StringIO()
    call_command(*args, "--no-progress", "--retries", "1", stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_backfill_sends_exactly_the_generated_events_and_is_idempotent(pulse_server, clean_tenant_a, tmp_path):
    scenario_path = tiny(tmp_path)
    scenario = generate(load_config(scenario_path))
    key = clean_tenant_a.keys["ingest"]  # read-less key: the currency check falls back to the scenario's

    first = run("simulate", "--scenario", str(scenario_path), "--api-key", key, "--base-url", pulse_server,
                "--batch", "100")
    assert first["sent"] == first["generated"] == len(scenario.events) > 200
    assert (first["accepted"], first["duplicates"], first["rejected"]) == (len(scenario.events), 0, 0)
    stored = tenant_sql(clean_tenant_a, "SELECT event_id FROM events")
    assert sorted(r[0] for r in stored) == sorted(str(e["event_id"]) for e in scenario.events)

    second = run("simulate", "--scenario", str(scenario_path), "--api-key", key, "--base-url", pulse_server,
                 "--batch", "1000")
    assert (second["sent"], second["accepted"], second["duplicates"]) == (len(scenario.events), 0,
                                                                          len(scenario.events))
    assert tenant_sql(clean_tenant_a, "SELECT count(*) FROM events")[0][0] == len(scenario.events)


def test_rejected_events_make_the_command_fail(pulse_server, clean_tenant_a, tmp_path):
    out = io.StringIO()
    with pytest.raises(CommandError, match="not stored"):
        call_command("simulate", "--scenario", str(tiny(tmp_path, days=0.02)), "--api-key",
                     clean_tenant_a.keys["admin"], "--base-url", pulse_server, "--currency", "ZZZ", "--no-progress",
                     stdout=out, stderr=io.StringIO())
    summary = json.loads(out.getvalue())
    assert summary["rejected"] > 0 and summary["accepted"] + summary["duplicates"] < summary["sent"]


def test_live_shifts_timestamps_to_now_and_paces(pulse_server, clean_tenant_a, tmp_path):
    scenario_path = tiny(tmp_path, days=0.02)  # 28.8 minutes of shop time
    scenario = generate(load_config(scenario_path))
    span = float(scenario.events.ts[-1] - scenario.events.ts[0])
    speedup = span / 2.0  # the whole scenario in about 2 s of wall time
    before = datetime.now(UTC)
    t0 = time.monotonic()
    summary = run("simulate", "--scenario", str(scenario_path), "--api-key", clean_tenant_a.keys["admin"],
                  "--base-url", pulse_server, "--mode", "live", "--speedup", str(speedup), "--id-suffix=-t1",
                  "--out", str(tmp_path / "out"))
    elapsed = time.monotonic() - t0
    after = datetime.now(UTC)

    assert summary["sent"] == summary["accepted"] == len(scenario.events)
    assert elapsed >= 1.8  # paced by event time, not sent at once
    rows = tenant_sql(clean_tenant_a, "SELECT min(occurred_at), max(occurred_at), count(*), "
                                      "bool_and(event_id LIKE '%%-t1') FROM events")
    first, last, count, suffixed = rows[0]
    assert count == len(scenario.events) and suffixed
    assert before.timestamp() - 1 <= first.timestamp() and last.timestamp() <= after.timestamp() + 1
    assert (last - first).total_seconds() == pytest.approx(span / speedup, abs=1.0)
    # The labels written next to the run are shifted the same way (and name the suffixed ids).
    labels = read_labels(tmp_path / "out" / "labels.json")
    card = next(lab for lab in labels.labels if lab.type == "card_testing")
    assert before <= card.start <= after and all(e.endswith("-t1") for e in card.event_ids)


def test_live_at_a_fixed_rate(pulse_server, clean_tenant_a, tmp_path):
    scenario_path = tiny(tmp_path, days=0.02)
    n = len(generate(load_config(scenario_path)).events)
    rate = n / 1.5
    t0 = time.monotonic()
    summary = run("simulate", "--scenario", str(scenario_path), "--api-key", clean_tenant_a.keys["admin"],
                  "--base-url", pulse_server, "--mode", "live", "--rate", str(rate))
    assert summary["sent"] == summary["accepted"] == n
    assert time.monotonic() - t0 >= 1.3
    newest = tenant_sql(clean_tenant_a, "SELECT max(occurred_at) FROM events")[0][0]
    assert newest <= datetime.now(UTC)  # never from the future


def test_evaluate_scenario_writes_a_report(pulse_server, clean_tenant_a, tmp_path):
    out = tmp_path / "report"
    args = ["evaluate_scenario", "--scenario", str(tiny(tmp_path, days=0.05)), "--api-key",
            clean_tenant_a.keys["admin"], "--base-url", pulse_server, "--out", str(out), "--stable", "1",
            "--poll", "0.3", "--wait", "4", "--plot", "orders", "sessions"]
    try:
        summary = run(*args)
    except CommandError as exc:
        # Until scoring serves the endpoint the command must say so rather than report zeros.
        assert "GET /api/v1/anomalies" in str(exc)
        pytest.skip("GET /api/v1/anomalies is not served yet")
    assert summary["ingest"]["sent"] == summary["events"]
    for name in ("report.md", "results.json", "anomalies.json", "labels.json", "plot_orders.png"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    assert "card_testing" in results["evaluation"]["per_type"]
    assert "kpi buckets" in (out / "report.md").read_text()
