"""`python manage.py simulate --scenario small --api-key KEY [--mode backfill|live] ...`

Replays a simulator scenario into a running platform through `POST /api/v1/events`, exactly as an
integrator would: backfill (as fast as the platform takes it) or live (timestamps shifted to now, paced
by event time x speedup or at a fixed events/s rate). Prints one JSON summary line on stdout and exits
non-zero unless every sent event was stored (accepted now or a duplicate of an earlier run).
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from insights.management.simulation import (
    ProgressBar,
    backfill,
    fresh_suffix,
    live,
    quiet_http_logs,
    rate_speedup,
    scenario_config,
    shifted_label_set,
    tenant_currency,
    write_json,
)
from simulator import Scenario, generate
from simulator.client import PulseClient, PulseClientError
from simulator.io import write_labels
from simulator.replay import TimeShift


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM ask the replay to stop between batches (and cut pacing sleeps short); the previous
    handlers come back afterwards (call_command from a test or a shell must not keep ours)."""
    stop = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        stop.set()

    if threading.current_thread() is not threading.main_thread():  # signals only reach the main thread
        yield stop
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def add_connection_arguments(parser: CommandParser, *, key_required: bool = True) -> None:
    parser.add_argument("--api-key", required=key_required, help="an API key of the target tenant (ingest + read)")
    parser.add_argument("--base-url", default=settings.PULSE_BASE_URL,
                        help="the platform's URL (default: PULSE_BASE_URL, %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per HTTP request")
    parser.add_argument("--retries", type=int, default=5, help="retries of a request that failed transiently")


class Command(BaseCommand):
    help = "Replay a simulator scenario into a running platform (backfill or live)."
    # An HTTP client of the platform: it needs no model or database check, and `make run` should not lose
    # its demo feed over a system-check warning in an unrelated app.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--scenario", default="small", help="small, default, learning or a YAML path")
        parser.add_argument("--seed", type=int, default=None)
        add_connection_arguments(parser)
        parser.add_argument("--mode", choices=("backfill", "live"), default="backfill")
        parser.add_argument("--rate", type=float, default=None, help="live: send N events per second")
        parser.add_argument("--speedup", type=float, default=None,
                            help="live: event time runs S times faster than the wall clock (default 1; with "
                                 "--rate, the speedup that keeps timestamps level with the sending)")
        parser.add_argument("--batch", type=int, default=1000, help="events per request (max 10,000)")
        parser.add_argument("--currency", default="tenant",
                            help="'tenant' (relabel amounts in the tenant's currency when it has no rate for "
                                 "the scenario's), 'scenario', or an ISO code")
        parser.add_argument("--id-suffix", default=None, help="live: suffix for event ids (default: fresh per run)")
        parser.add_argument("--out", type=Path, default=None, help="write labels.json (shifted) and summary.json")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        if not 1 <= opts["batch"] <= 10_000:
            raise CommandError("--batch must be between 1 and 10000")
        if opts["rate"] is not None and opts["rate"] <= 0:
            raise CommandError("--rate must be positive")
        if opts["speedup"] is not None and opts["speedup"] <= 0:
            raise CommandError("--speedup must be positive")
        quiet_http_logs()
        with stop_on_signals() as stop, PulseClient(opts["base_url"], opts["api_key"], timeout=opts["timeout"],
                                                   retries=opts["retries"]) as client:
            summary, ok, _scenario, _shift = run_simulation(client, opts, stop=stop, log=self._log)
        self.stdout.write(json.dumps(summary))
        if not ok:
            raise CommandError(f"{summary['sent'] - summary['accepted'] - summary['duplicates']} of "
                               f"{summary['sent']} events were not stored (see 'rejected')")

    def _log(self, message: str) -> None:
        self.stderr.write(message)


def run_simulation(client: PulseClient, opts: dict[str, Any], *, stop: threading.Event,
                   log: Any) -> tuple[dict[str, Any], bool, Scenario, TimeShift | None]:
    """The command's work, reusable by `evaluate_scenario`: (summary, every event stored, the scenario
    sent, the time shift applied to it)."""
    cfg = scenario_config(opts["scenario"], seed=opts.get("seed"))
    currency = _currency(client, cfg.currency, opts.get("currency", "tenant"), log)
    if currency:
        cfg = scenario_config(opts["scenario"], seed=opts.get("seed"), currency=currency)
    scenario = generate(cfg)
    events = scenario.events
    mode = opts.get("mode", "backfill")
    bar = ProgressBar(len(events), f"{cfg.name} {mode}", enabled=not opts.get("no_progress"))
    try:
        if mode == "backfill":
            result = backfill(client, events, batch=opts["batch"], on_batch=bar, stop=stop)
        else:
            rate = opts.get("rate")
            speedup = opts.get("speedup") or (rate_speedup(events, rate) if rate else 1.0)
            suffix = opts.get("id_suffix")
            result = live(client, events, origin=scenario.start, speedup=speedup, rate=rate,
                          batch=min(opts["batch"], 500 if rate is None else opts["batch"]),
                          id_suffix=fresh_suffix() if suffix is None else suffix, on_batch=bar, stop=stop)
    except PulseClientError as exc:
        bar.close()
        raise CommandError(str(exc)) from exc
    bar.close()
    counts = result.counts
    for rejection in counts.rejections:
        log(f"rejected: {json.dumps(rejection)[:500]}")
    summary: dict[str, Any] = {**result.summary(), "scenario": cfg.name, "seed": scenario.seed, "mode": mode,
                               "generated": len(events), "stopped": result.stopped}
    if currency:
        summary["currency"] = currency
    if opts.get("out"):
        out = Path(opts["out"])
        write_labels(shifted_label_set(scenario, result.shift), out / "labels.json")
        write_json(out / "summary.json", summary)
    return summary, counts.complete, scenario, result.shift


def _currency(client: PulseClient, scenario_currency: str, choice: str, log: Any) -> str | None:
    if choice == "scenario":
        return None
    if choice == "tenant":
        return tenant_currency(client, scenario_currency, log=log)
    return choice.upper()
