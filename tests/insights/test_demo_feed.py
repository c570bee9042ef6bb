"""`manage.py demo_feed` as `make run` starts it: a real process against a real server, stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from insights.management.commands.demo_feed import LIVE_INCIDENTS, demo_config
from simulator import generate
from tests.conftest import ROOT, server_env
from tests.insights.conftest import tenant_sql
from tests.insights.test_simulate import tiny


def test_demo_feed_backfills_goes_live_and_stops_cleanly_on_sigterm(pulse_server, clean_tenant_a, tmp_path):
    state = tmp_path / "demo.json"
    state.write_text(json.dumps({"slug": clean_tenant_a.slug, "api_key": clean_tenant_a.keys["admin"],
                                 "base_url": pulse_server}))
    started = datetime.now(UTC)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "demo_feed", "--state", str(state), "--scenario", str(tiny(tmp_path)),
         "--backfill-days", "0.05", "--live-days", "0.02", "--no-progress"],
        cwd=ROOT, env=server_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        count = 0
        while time.monotonic() < deadline and count == 0:  # the backfill has landed
            assert proc.poll() is None, proc.communicate()[1].decode()[-3000:]
            time.sleep(0.5)
            count = tenant_sql(clean_tenant_a, "SELECT count(*) FROM events")[0][0]
        assert count > 0, "demo_feed stored nothing"
        time.sleep(1.0)  # now in the live phase, sleeping until the next event is due
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    log = err.decode()
    assert proc.returncode == 0, log
    assert "demo feed: live" in log and "demo feed: stopped" in log
    first, last = tenant_sql(clean_tenant_a, "SELECT min(occurred_at), max(occurred_at) FROM events")[0]
    # History ends now and reaches back about the requested 0.05 days (72 min, started on the hour).
    assert started - timedelta(minutes=72 + 60) <= first <= started - timedelta(minutes=60)
    assert last <= datetime.now(UTC)


def test_demo_config_puts_history_before_now_and_incidents_just_after(tmp_path):
    now = datetime(2026, 3, 4, 10, 17, 30, tzinfo=UTC).timestamp()
    cfg = demo_config(str(tiny(tmp_path)), now=now, tz="Europe/Berlin", currency="EUR", backfill_days=0.1,
                      live_days=0.05)
    assert cfg.start == datetime(2026, 3, 4, 7, 0, tzinfo=UTC)  # 0.1 day = 2.4 h back, on the hour
    assert (cfg.timezone, cfg.currency) == ("Europe/Berlin", "EUR")
    scenario = generate(cfg)
    live = {lab.incident_id: lab for lab in scenario.labels if lab.incident_id.startswith("live-")}
    assert set(live) == {spec["id"] for _, spec in LIVE_INCIDENTS}
    for delay, spec in LIVE_INCIDENTS:
        # Fraud labels start at the first fraudulent payment, a little after its order.
        assert now + delay - 1 <= live[spec["id"]].start.timestamp() <= now + delay + 300
    # The scenario's own incident (card testing at 10m) stays in the history.
    assert any(lab.incident_id == "ct-1" and lab.start.timestamp() < now for lab in scenario.labels)
    assert scenario.events.ts[0] >= cfg.start.timestamp() and str(scenario.events.column("event_id")[0]).startswith("demo")
