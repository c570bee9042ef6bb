"""Server CPU per request of this checkout against another one, paired request by request.

    .venv/bin/python bench/web_paired.py --base /path/to/other/checkout [--requests 700] [--rounds 2]

This box's speed moves by up to 2.5x within an hour, so two runs one after the other compare the
moments more than the code. Here both servers run at once (this checkout's and `--base`'s, each
from its own tree and virtualenv: `make venv` there first), and the same requests alternate between
them one at a time (ABBA order), so both see the same box. Per request kind: server CPU per request
(user + system of the server process; PostgreSQL and Redis not included) and round-trip time, for
`POST /api/v1/fraud-check` and `GET /api/v1/anomalies?limit=1`. A checkout without `pulse/web.py`
(before uvicorn) is served by daphne. Same database and Redis as bench/fraud_check.py; one JSON
line per request kind and round.
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Imported first: it sets the database and Redis (PULSE_BENCH_DB / PULSE_BENCH_REDIS_URL) both use.
from fraud_check import _payments  # noqa: E402
from ingest_bench_common import (  # noqa: E402
    ROOT,
    bench_env,
    emit,
    ensure_database,
    free_port,
    fresh_tenant,
    stop,
    wait_http,
)

WARMUP = 300


def _log_path(name: str) -> Path:
    return Path(tempfile.gettempdir()) / f"pulse-web-paired-{name}.log"


def _start(name: str, tree: Path, port: int) -> subprocess.Popen[bytes]:
    py = str(tree / ".venv" / "bin" / "python")
    if (tree / "pulse" / "web.py").exists():
        cmd = [py, "-m", "pulse.web", "--port", str(port)]
    else:
        cmd = [py, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "pulse.asgi:application"]
    env = bench_env(PYTHONPATH=f"{tree / 'bench'}:{tree}", PULSE_WEB_LOG_LEVEL="warning")
    log = _log_path(name).open("wb")  # a 500's traceback lands here
    return subprocess.Popen(cmd, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _send(name: str, conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None,
          headers: dict[str, str]) -> float:
    """One request; its round-trip time in seconds."""
    started = time.perf_counter()
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"{method} {path} answered {response.status} on the {name} server "
                           f"(its log: {_log_path(name)})")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, type=Path, help="the other checkout (with its own .venv)")
    parser.add_argument("--requests", type=int, default=700, help="measured requests per server and kind")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    trees = {"base": args.base.resolve(), "this": ROOT}
    if not (trees["base"] / ".venv" / "bin" / "python").exists():
        sys.exit(f"{trees['base']} has no .venv: run `make venv` there first")
    ensure_database()
    # A tenant per server: the two checkouts may ship different global models, and a tenant's
    # version-0 row follows the model of the code that scores it.
    keys = {name: fresh_tenant(f"bench-paired-{name}")["api_key"] for name in trees}
    ports = {name: free_port() for name in trees}
    servers = {name: _start(name, tree, ports[name]) for name, tree in trees.items()}
    try:
        for port in ports.values():
            wait_http(port)
        conns = {name: http.client.HTTPConnection("127.0.0.1", port, timeout=30) for name, port in ports.items()}
        headers = {name: {"Authorization": f"Api-Key {keys[name]}", "Content-Type": "application/json"}
                   for name in trees}
        n = args.requests
        for round_no in range(args.rounds):
            payments: list[bytes | None] = list(_payments(2 * (n + WARMUP), seed=100 + round_no))
            kinds = [("POST /api/v1/fraud-check", "POST", "/api/v1/fraud-check", payments),
                     ("GET /api/v1/anomalies?limit=1", "GET", "/api/v1/anomalies?limit=1", [None] * len(payments))]
            for label, method, path, bodies in kinds:
                sent = iter(bodies)
                for _ in range(WARMUP):
                    for name in trees:
                        _send(name, conns[name], method, path, next(sent), headers[name])
                cpu0 = {name: _cpu_seconds(proc.pid) for name, proc in servers.items()}
                waited = dict.fromkeys(trees, 0.0)
                for i in range(n):
                    for name in (("base", "this") if i % 2 == 0 else ("this", "base")):
                        waited[name] += _send(name, conns[name], method, path, next(sent), headers[name])
                cpu1 = {name: _cpu_seconds(proc.pid) for name, proc in servers.items()}
                emit({"bench": "web_paired", "request": label, "round": round_no + 1, "requests": n,
                      "base": str(trees["base"]),
                      **{f"{name}_server_cpu_ms": round(1000 * (cpu1[name] - cpu0[name]) / n, 2) for name in trees},
                      **{f"{name}_round_trip_ms": round(1000 * waited[name] / n, 2) for name in trees}})
    finally:
        for proc in servers.values():
            stop(proc)


if __name__ == "__main__":
    main()
