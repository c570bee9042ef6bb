"""The web server: `python -m pulse.web [--host H] [--port P]` serves `pulse.asgi:application`
(the REST API and the live websocket feed) with uvicorn on uvloop, httptools and websockets (sans-I/O).

One place for the server's settings, used by `make run`, the Docker image, the benchmarks and the
tests. Why uvicorn and not daphne: alternating runs of `bench/fraud_check.py --sequential` spent
1–2 ms less server CPU per request with it (a fraud-check ~12.5 -> ~11, a trivial read ~8 -> ~7 on
a slow moment of the 2-core box), all of it in the server's own HTTP handling.

- Keep-alive: an idle connection stays open for `PULSE_WEB_KEEPALIVE_SECONDS` (75 s, as nginx).
  uvicorn's default of 5 s raced clients that reuse a connection after a pause (the request is
  written just as the server closes it), which daphne, keeping connections forever, never did.
- No lifespan: `pulse.asgi` has no startup or shutdown hooks (Channels' router has no lifespan).
- No access log: at thousands of requests per second it costs CPU and says less than the metrics.
"""

from __future__ import annotations

import argparse
import os
import sys


def command(port: int, host: str = "127.0.0.1") -> list[str]:
    """The command line that starts the web server (for subprocesses: run.py, benchmarks, tests)."""
    return [sys.executable, "-m", "pulse.web", "--host", host, "--port", str(port)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("PULSE_WEB_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PULSE_PORT", "8000")))
    args = parser.parse_args(argv)
    import uvicorn

    uvicorn.run(
        "pulse.asgi:application",
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        lifespan="off",
        access_log=False,
        log_level=os.environ.get("PULSE_WEB_LOG_LEVEL", "info"),
        timeout_keep_alive=int(os.environ.get("PULSE_WEB_KEEPALIVE_SECONDS", "75")),
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
