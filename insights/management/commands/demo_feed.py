"""`python manage.py demo_feed` — feed the demo tenant live from the simulator (started by `make run`).

Reads `.pulse/demo.json` (written by `manage.py demo_setup`: slug, api_key, base_url), waits for the web
server, then:

1. backfills recent history (default: the last 3 days, generated in the tenant's time zone so the daily
   and weekly seasonality fall on the real clock) so the detectors have a baseline;
2. streams the following events live, in real time (speedup 1: the live data must look like the history
   the detectors learned from), with a big new-customer order, a card-testing burst and a flash sale
   injected in the first minutes, so a new user sees anomalies and alerts within about a minute.

A restart only backfills what is missing: history starts after the newest event the tenant holds, so
running `make run` again never doubles the KPIs. Event ids carry a per-run tag. Runs until SIGTERM or
SIGINT, then exits 0; any platform error is logged and the feed retries, because `scripts/run.py` stops
every service when one of them exits.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from insights.management.commands.simulate import stop_on_signals
from insights.management.simulation import (
    ProgressBar,
    backfill,
    live,
    quiet_http_logs,
    scenario_config,
    table_slice,
)
from simulator import ScenarioConfig, generate
from simulator.client import PulseClient, PulseClientError
from simulator.config import parse_duration
from simulator.labels import parse_time

# Injected at these offsets after the feed goes live (seconds): what a new user should see first.
LIVE_INCIDENTS: list[tuple[float, dict[str, Any]]] = [
    (15, {"id": "live-bigspender", "type": "high_amount_new_customer", "duration": "20s"}),
    (30, {"id": "live-cardtest", "type": "card_testing", "duration": "10m", "attempts": 60}),
    (60, {"id": "live-flash", "type": "flash_sale", "duration": "45m", "traffic_multiplier": 3.0,
          "conversion_multiplier": 1.8}),
]
RETRY_SECONDS = 10.0


class Command(BaseCommand):
    help = "Feed the demo tenant live from the simulator until stopped (SIGTERM/SIGINT)."
    # An HTTP client of the platform: it needs no model or database check, and `make run` should not lose
    # its demo feed over a system-check warning in an unrelated app.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--state", type=Path, default=None, help="demo.json (default: .pulse/demo.json)")
        parser.add_argument("--base-url", default=None, help="overrides the base_url of demo.json")
        parser.add_argument("--scenario", default="small", help="the shop to simulate (small, default, a YAML path)")
        parser.add_argument("--backfill-days", type=float, default=3.0)
        parser.add_argument("--live-days", type=float, default=2.0,
                            help="live data generated per cycle; a new cycle (with new incidents) follows")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--wait-server", type=float, default=600.0,
                            help="seconds to wait for /api/v1/status before giving up")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        quiet_http_logs()
        state_path: Path = opts["state"] or settings.STATE_DIR / "demo.json"
        try:
            state = json.loads(state_path.read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {state_path} ({exc}); run `python manage.py demo_setup` first") from exc
        base_url = opts["base_url"] or state.get("base_url") or settings.PULSE_BASE_URL
        with stop_on_signals() as stop, PulseClient(base_url, state["api_key"], timeout=60.0) as client:
            self._log(f"demo feed: waiting for {base_url}")
            try:
                client.wait_until_up(opts["wait_server"], stop=stop)
            except PulseClientError as exc:
                if stop.is_set():
                    return
                raise CommandError(str(exc)) from exc
            feed = DemoFeed(client, opts, stop=stop, log=self._log)
            while not stop.is_set():
                try:
                    feed.cycle()
                except PulseClientError as exc:
                    self._log(f"demo feed: {exc}; retrying in {RETRY_SECONDS:.0f}s")
                    stop.wait(RETRY_SECONDS)
        self._log("demo feed: stopped")

    def _log(self, message: str) -> None:
        self.stderr.write(message)
        self.stderr.flush()


class DemoFeed:
    def __init__(self, client: PulseClient, opts: dict[str, Any], *, stop: threading.Event, log: Any) -> None:
        self.client = client
        self.opts = opts
        self.stop = stop
        self.log = log

    def cycle(self) -> None:
        """Backfill what is missing up to now, then stream live until this cycle's data runs out."""
        now = time.time()
        tenant = self.client.tenant()
        scenario = generate(demo_config(self.opts["scenario"], now=now, tz=tenant["timezone"],
                                        currency=tenant["currency"], backfill_days=self.opts["backfill_days"],
                                        live_days=self.opts["live_days"], seed=self.opts.get("seed")))
        newest = self.newest_event_time()
        ts = scenario.events.ts
        fresh = ts > newest if newest is not None else np.ones(len(ts), dtype=bool)
        history = table_slice(scenario.events, fresh & (ts <= now))
        upcoming = table_slice(scenario.events, fresh & (ts > now))
        self.log(f"demo feed: backfilling {len(history)} events"
                 + (f" after {datetime.fromtimestamp(newest, UTC).isoformat()}" if newest else ""))
        bar = ProgressBar(len(history), "demo backfill", enabled=not self.opts.get("no_progress"))
        done = backfill(self.client, history, batch=2000, on_batch=bar, stop=self.stop)
        bar.close()
        self.log(f"demo feed: backfill {json.dumps(done.summary())}")
        if self.stop.is_set():
            return
        self.log(f"demo feed: live, {len(upcoming)} events over {self.opts['live_days']:g} days; incidents at "
                 + ", ".join(f"+{int(s)}s {spec['type']}" for s, spec in LIVE_INCIDENTS))
        # Identity shift (the scenario is already on the real clock): live() only paces.
        result = live(self.client, upcoming, origin=datetime.fromtimestamp(now, UTC), speedup=1.0, batch=500,
                      start_at=now, stop=self.stop)
        self.log(f"demo feed: live cycle {json.dumps(result.summary())}")

    def newest_event_time(self) -> float | None:
        page = self.client.get_json("/api/v1/events", {"limit": 1})
        results = page.get("results") or []
        if not results:
            return None
        ev = results[0]
        moment = ev.get("occurred_at") or ev.get("timestamp")
        return parse_time(moment).timestamp() if moment else None


def demo_config(name: str, *, now: float, tz: str, currency: str, backfill_days: float, live_days: float,
                seed: int | None = None) -> ScenarioConfig:
    """The scenario `name` moved onto the real clock: it starts `backfill_days` before `now` (on the hour,
    in the tenant's zone and currency), keeps the incidents that fall into that history, and gets the live
    incidents injected just after `now`. Ids are tagged per run so separate runs never collide."""
    base = scenario_config(name, seed=seed)
    start = datetime.fromtimestamp(now - backfill_days * 86400, UTC).replace(minute=0, second=0, microsecond=0)
    offset = now - start.timestamp()
    days = (offset + live_days * 86400) / 86400

    def keep(spec: Any) -> bool:
        return parse_duration(spec.at).total_seconds() < offset

    incidents = [i.model_dump(exclude_none=True) for i in base.incidents if keep(i)]
    fraud = [f.model_dump(exclude_none=True) for f in base.fraud if keep(f)]
    live_specs = [{**spec, "at": f"{int(offset + delay)}s"} for delay, spec in LIVE_INCIDENTS]
    # Incident types are split between the two lists the config validates separately.
    fraud_types = {"card_testing", "ip_ring", "device_ring", "high_amount_new_customer", "account_takeover",
                   "return_abuse", "compromised_store"}
    incidents += [s for s in live_specs if s["type"] not in fraud_types]
    fraud += [s for s in live_specs if s["type"] in fraud_types]
    tag = f"{int(now * 1000):x}"
    return scenario_config(name, seed=seed, currency=currency, name=f"demo{tag}", start=start.isoformat(),
                           timezone=tz, days=round(days, 6), incidents=incidents, fraud=fraud,
                           description=f"demo feed from {base.name}")
