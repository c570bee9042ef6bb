"""`python manage.py evaluate_scenario --scenario default (--api-key KEY | --tenant-create SLUG) [--out DIR]`

Runs a labelled scenario through a running platform and scores what it found: backfill through
`POST /api/v1/events`, wait until the platform has digested it (`GET /api/v1/status` reports no pending
work and the anomaly count is stable), read every anomaly from `GET /api/v1/anomalies`, match them to the
ground truth (`simulator.evaluate`), and write report.md, PNG plots (KPI series from `GET /api/v1/metrics`
with incidents and detections marked), results.json, anomalies.json and labels.json. Prints one JSON
summary line. This is where the accuracy figures in BENCHMARKS.md come from.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from insights.management.commands.simulate import add_connection_arguments, run_simulation, stop_on_signals
from insights.management.simulation import (
    find_key,
    quiet_http_logs,
    scenario_config,
    series_for_plots,
    shifted_label_set,
    wait_for_processing,
    write_json,
)
from simulator.client import PulseClient, PulseClientError
from simulator.evaluate import evaluate
from simulator.io import write_labels
from simulator.report import write_report

PLOT_METRICS = ["orders", "revenue", "sessions", "conversion_rate", "ctr"]
KPI_BUCKETS_KEY = "kpi_buckets_evaluated"


class Command(BaseCommand):
    help = "Replay a labelled scenario into the platform, wait, read the anomalies and write an accuracy report."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--scenario", default="default", help="small, default, learning or a YAML path")
        parser.add_argument("--seed", type=int, default=None)
        add_connection_arguments(parser, key_required=False)
        parser.add_argument("--tenant-create", metavar="SLUG", default=None,
                            help="create this tenant in the local database (or reuse it) and use a new key of "
                                 "it; the server at --base-url must use the same database")
        parser.add_argument("--out", type=Path, default=None, help="report directory (default reports/<scenario>-<utc>)")
        parser.add_argument("--wait", type=float, default=1800.0, help="give the platform at most this many seconds")
        parser.add_argument("--stable", type=float, default=30.0,
                            help="done when nothing is pending and the anomaly count held this many seconds")
        parser.add_argument("--poll", type=float, default=3.0)
        parser.add_argument("--batch", type=int, default=2000)
        parser.add_argument("--tolerance-minutes", type=float, default=60.0)
        parser.add_argument("--kpi-buckets", type=int, default=None,
                            help="KPI cells evaluated, when known from elsewhere (overrides the platform's figure)")
        parser.add_argument("--plot", nargs="*", default=PLOT_METRICS)
        parser.add_argument("--currency", default="tenant")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        quiet_http_logs()
        cfg = scenario_config(opts["scenario"], seed=opts["seed"])
        if opts["tenant_create"]:
            opts["api_key"] = _tenant_key(opts["tenant_create"], cfg.timezone, cfg.currency, self._log)
        if not opts["api_key"]:
            raise CommandError("give --api-key KEY or --tenant-create SLUG")
        out: Path = opts["out"] or Path("reports") / f"{cfg.name}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
        started = time.perf_counter()
        with stop_on_signals() as stop, PulseClient(opts["base_url"], opts["api_key"], timeout=opts["timeout"],
                                                   retries=opts["retries"]) as client:
            try:
                client.wait_until_up(60.0)
                summary = evaluate_run(client, cfg_name=opts["scenario"], opts=opts, out=out, stop=stop,
                                       log=self._log)
            except PulseClientError as exc:
                raise CommandError(str(exc)) from exc
        summary["seconds_total"] = round(time.perf_counter() - started, 1)
        write_json(out / "summary.json", summary)
        self.stdout.write(json.dumps(summary, default=str))

    def _log(self, message: str) -> None:
        self.stderr.write(message)


def _tenant_key(slug: str, timezone_name: str, currency: str, log: Any) -> str:
    """A fresh admin key of tenant `slug`, creating it (unlimited plan, the scenario's zone and currency)."""
    from tenants.models import Tenant
    from tenants.services import api_key_create, tenant_create

    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        _, raw = tenant_create(slug=slug, name=f"Evaluation {slug}", plan="enterprise", timezone_name=timezone_name,
                               currency=currency, created_by="evaluate_scenario")
        log(f"created tenant {slug}")
        return raw
    log(f"tenant {slug} exists: reusing it (anomalies it already holds for this window count too)")
    _, raw = api_key_create(tenant=tenant, name="evaluate_scenario", scopes=["ingest", "read", "admin"],
                            created_by="evaluate_scenario")
    return raw


def evaluate_run(client: PulseClient, *, cfg_name: str, opts: dict[str, Any], out: Path, stop: Any,
                 log: Any) -> dict[str, Any]:
    replay_opts = {**opts, "scenario": cfg_name, "mode": "backfill", "out": None}
    ingest, complete, scenario, _ = run_simulation(client, replay_opts, stop=stop, log=log)
    if not complete:
        raise CommandError(f"the replay did not store every event: {json.dumps(ingest)}")
    cfg = scenario.config
    labels = shifted_label_set(scenario, None)

    log(f"replayed {ingest['sent']} events in {ingest['seconds']}s; waiting for the platform")
    waited = wait_for_processing(client, timeout=opts["wait"], stable_seconds=opts["stable"], poll=opts["poll"],
                                 log=log)
    if not waited.settled:
        log(f"WARNING: the platform had not settled after {waited.seconds:.0f}s ({waited.busy}); evaluating anyway")
    tolerance = timedelta(minutes=opts["tolerance_minutes"])
    window = {"from": (scenario.start - tolerance).isoformat(), "to": (scenario.end + tolerance).isoformat()}
    try:
        anomalies = client.anomalies(**window)
    except PulseClientError as exc:
        if exc.status_code == 404:
            raise CommandError("the platform does not serve GET /api/v1/anomalies yet: nothing to evaluate") from exc
        raise

    kpi_buckets, buckets_source = _kpi_buckets(opts.get("kpi_buckets"), waited.last_status)
    result = evaluate(labels.labels, anomalies, truth=labels.truth, tolerance=tolerance, kpi_buckets=kpi_buckets,
                      scenario_start=scenario.start, scenario_end=scenario.end, delay_basis="occurred_at")
    if kpi_buckets is None:
        buckets_source = (f"UPPER BOUND: the platform does not report how many KPI buckets it evaluated "
                          f"('{KPI_BUCKETS_KEY}' in GET /api/v1/status), so the KPI false-alarm rate is per "
                          f"scenario hour of ONE series ({result.kpi_buckets} buckets): the true rate per "
                          f"evaluated bucket is lower")
    series, series_source = series_for_plots(client, opts.get("plot") or [], start=scenario.start, end=scenario.end,
                                             events=scenario.events, log=log)
    meta = {"scenario": cfg.name, "seed": scenario.seed, "events": len(scenario.events),
            "window": f"{scenario.start.isoformat()} .. {scenario.end.isoformat()}",
            "platform": client.base_url, "ingest": json.dumps({k: ingest[k] for k in
                                                               ("sent", "accepted", "duplicates", "rejected")}),
            "settled": f"{waited.settled} after {waited.seconds:.0f}s",
            "anomalies read": len(anomalies), "kpi buckets": buckets_source, "series": series_source or "none",
            "delay basis": "occurred_at (data time: this is a backfill)",
            "tolerance": f"{opts['tolerance_minutes']:.0f} min"}
    paths = write_report(result, out, labels=labels.labels, anomalies=anomalies, series=series,
                         title=f"Evaluation: {cfg.name} (seed {scenario.seed})", meta=meta)
    write_labels(labels, out / "labels.json")
    write_json(out / "anomalies.json", anomalies)
    evaluation = result.to_dict()
    write_json(out / "results.json", {"meta": meta, "ingest": ingest, "wait": {
        "settled": waited.settled, "seconds": round(waited.seconds, 1), "busy": waited.busy,
        "status": waited.last_status}, "kpi_buckets_source": buckets_source, "evaluation": evaluation})
    return {"scenario": cfg.name, "seed": scenario.seed, "events": len(scenario.events),
            "ingest": {k: ingest[k] for k in ("sent", "accepted", "duplicates", "rejected", "events_per_second")},
            "settled": waited.settled, "wait_seconds": round(waited.seconds, 1), "anomalies": len(anomalies),
            "recall": {t: r["recall"] for t, r in evaluation["per_type"].items()},
            "delay_median_s": {t: r["delay_median_s"] for t, r in evaluation["per_type"].items()},
            "precision": evaluation["precision"], "false_alarms_per_1000": evaluation["false_alarms_per_1000"],
            "event_level": evaluation["event_level"], "kpi_buckets": result.kpi_buckets,
            "kpi_buckets_upper_bound": kpi_buckets is None, "report": str(paths["markdown"]),
            "base_url": client.base_url}


def _kpi_buckets(override: int | None, status: dict[str, Any]) -> tuple[int | None, str]:
    if override:
        return override, f"{override} (given on the command line)"
    found = find_key(status, KPI_BUCKETS_KEY)
    if isinstance(found, int | float) and found > 0:
        return int(found), f"{int(found)} (reported by the platform)"
    return None, ""
