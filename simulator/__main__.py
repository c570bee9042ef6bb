"""`python -m simulator generate --scenario small --out DIR --format ndjson [--gzip] [--seed N]`
`python -m simulator evaluate --labels DIR/labels.json --anomalies anomalies.json --out REPORT_DIR`
`python -m simulator list`
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from pathlib import Path

from simulator.config import load_config, scenario_names
from simulator.evaluate import evaluate
from simulator.generator import generate
from simulator.io import read_events, read_labels, write_scenario
from simulator.report import write_report
from simulator.series import kpi_series


def _generate(args: argparse.Namespace) -> int:
    cfg = load_config(args.scenario)
    t0 = time.perf_counter()
    scenario = generate(cfg, seed=args.seed)
    t1 = time.perf_counter()
    paths = write_scenario(scenario, args.out, fmt=args.format, compress=args.gzip)
    t2 = time.perf_counter()
    meta = scenario.meta()
    meta.pop("catalogue", None)
    print(json.dumps({"scenario": cfg.name, "seed": scenario.seed, "events": len(scenario.events),
                      "labels": len(scenario.labels), "event_labels": len(scenario.event_labels),
                      "events_by_type": meta["events_by_type"], "generate_seconds": round(t1 - t0, 3),
                      "write_seconds": round(t2 - t1, 3), **{f"{k}_file": str(v) for k, v in paths.items()}}))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    ls = read_labels(args.labels)
    with open(args.anomalies, encoding="utf-8") as fh:
        data = json.load(fh)
    anomalies = data.get("results", data) if isinstance(data, dict) else data
    from simulator.labels import parse_time

    start = parse_time(ls.meta["start"]) if "start" in ls.meta else None
    end = parse_time(ls.meta["end"]) if "end" in ls.meta else None
    result = evaluate(ls.labels, anomalies, truth=ls.truth, tolerance=timedelta(minutes=args.tolerance_minutes),
                      kpi_buckets=args.kpi_buckets, scenario_start=start, scenario_end=end,
                      delay_basis=args.delay_basis)
    series = {}
    if args.events and start and end:
        events = list(read_events(args.events))
        series = {m: kpi_series(events, m, start=start, end=end) for m in args.plot}
    paths = write_report(result, args.out, labels=ls.labels, anomalies=anomalies, series=series,
                         title=f"Evaluation: {ls.meta.get('scenario', 'scenario')}",
                         meta={k: v for k, v in ls.meta.items() if k != "catalogue"})
    print(json.dumps({"report": str(paths["markdown"]), **result.to_dict()["precision"]}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="write a scenario's events and labels")
    g.add_argument("--scenario", default="small", help=f"name ({', '.join(scenario_names())}) or YAML path")
    g.add_argument("--out", required=True, type=Path)
    g.add_argument("--format", choices=("ndjson", "csv"), default="ndjson")
    g.add_argument("--gzip", action="store_true")
    g.add_argument("--seed", type=int, default=None)
    g.set_defaults(func=_generate)
    e = sub.add_parser("evaluate", help="match an anomalies JSON file against labels.json")
    e.add_argument("--labels", required=True, type=Path)
    e.add_argument("--anomalies", required=True, type=Path, help="JSON list or {'results': [...]}")
    e.add_argument("--events", type=Path, help="events file, for the plots")
    e.add_argument("--plot", nargs="*", default=["orders", "revenue", "sessions"])
    e.add_argument("--out", required=True, type=Path)
    e.add_argument("--tolerance-minutes", type=float, default=60)
    e.add_argument("--kpi-buckets", type=int, default=None)
    e.add_argument("--delay-basis", choices=("occurred_at", "detected_at"), default="occurred_at")
    e.set_defaults(func=_evaluate)
    sub.add_parser("list", help="bundled scenarios").set_defaults(
        func=lambda a: print("\n".join(scenario_names())) or 0)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
