"""Start web (uvicorn, `pulse.web`), Celery worker and beat (and optionally the demo feed) together; Ctrl-C or
SIGTERM stops them all. If one dies, the others are stopped too so nothing runs half-alive."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

PY = sys.executable


def commands(port: int, feed: bool, concurrency: int) -> dict[str, list[str]]:
    procs = {
        "web": [PY, "-m", "pulse.web", "--port", str(port)],
        "worker": [PY, "-m", "celery", "-A", "pulse", "worker", "-l", "INFO", "--concurrency", str(concurrency),
                   "-n", f"worker-{os.getpid()}@%h"],
        "beat": [PY, "-m", "celery", "-A", "pulse", "beat", "-l", "INFO",
                 "--schedule", os.path.join(".pulse", "celerybeat-schedule")],
    }
    if feed:
        procs["feed"] = [PY, "manage.py", "demo_feed"]
    return procs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=int(os.environ.get("PULSE_PORT", "8000")))
    parser.add_argument("--feed", action="store_true", help="feed the demo tenant from the simulator")
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("PULSE_WORKER_CONCURRENCY", "2")))
    args = parser.parse_args()
    os.makedirs(".pulse", exist_ok=True)
    os.environ.setdefault("PULSE_BASE_URL", f"http://localhost:{args.port}")

    running: dict[str, subprocess.Popen[bytes]] = {}
    for name, cmd in commands(args.port, args.feed, args.concurrency).items():
        env = dict(os.environ, PULSE_DB_POOL="1") if name == "web" else None
        running[name] = subprocess.Popen(cmd, start_new_session=True, env=env)
        print(f"[run] started {name} (pid {running[name].pid})", flush=True)
    print(f"[run] web on http://localhost:{args.port}  (Ctrl-C stops everything)", flush=True)

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            for name, proc in running.items():
                if proc.poll() is not None:
                    print(f"[run] {name} exited with {proc.returncode}; stopping the rest", flush=True)
                    stopping = True
                    break
            time.sleep(0.5)
    finally:
        for proc in running.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name, proc in running.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            print(f"[run] {name} stopped", flush=True)


if __name__ == "__main__":
    main()
