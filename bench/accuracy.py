"""Detection accuracy on a labelled simulator scenario, through the whole platform. Prints ONE JSON line.

    .venv/bin/python bench/accuracy.py [--scenario default] [--base-url URL --api-key KEY] [--record]

Without --base-url it starts its own platform (scripts/run.py: uvicorn, Celery worker and beat) on a free
port against the configured database, creates a fresh tenant (`evaluate_scenario --tenant-create`), runs
`manage.py evaluate_scenario` (backfill, wait until processed, read the anomalies, match them to the
labels, report under reports/) and stops the platform again. The JSON line is the command's summary:
recall per incident/fraud type, precision, false alarms per 1,000, detection delays, event-level fraud
figures, and whether the KPI false-alarm rate is an upper bound.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, emit  # noqa: E402
from pulse.lib.processes import group_stop  # noqa: E402

PY = sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--base-url", default=None, help="a running platform (else one is started)")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--wait", type=float, default=3600.0)
    parser.add_argument("--stable", type=float, default=60.0)
    parser.add_argument("--record", action="store_true", help="append the line to BENCHMARKS.md")
    args = parser.parse_args()

    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S}"
    out = ROOT / "reports" / f"accuracy-{args.scenario}-{stamp}"
    command = [PY, "manage.py", "evaluate_scenario", "--skip-checks", "--scenario", args.scenario, "--out", str(out),
               "--wait", str(args.wait), "--stable", str(args.stable), "--no-progress"]
    if args.seed is not None:
        command += ["--seed", str(args.seed)]
    platform = None
    if args.base_url:
        if not args.api_key:
            parser.error("--api-key is required with --base-url")
        command += ["--base-url", args.base_url, "--api-key", args.api_key]
    else:
        port = _free_port()
        platform = subprocess.Popen([PY, "scripts/run.py", "--port", str(port)], cwd=ROOT, start_new_session=True,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        command += ["--base-url", f"http://127.0.0.1:{port}", "--tenant-create", f"bench-acc-{stamp.lower()}"]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    finally:
        if platform is not None:
            group_stop(platform, timeout=30)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"evaluate_scenario failed with {done.returncode}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    summary["bench_seconds"] = round(time.perf_counter() - started, 1)
    emit("accuracy", summary)


if __name__ == "__main__":
    main()
