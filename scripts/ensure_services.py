"""Check that PostgreSQL and Redis answer (DATABASE_URL / REDIS_URL or the local defaults) and create
the database if it is missing. Run before migrations by `make run`, `make serve` and `make test`."""

from __future__ import annotations

import os
import sys
import time
from urllib.parse import urlparse

import psycopg
import redis


def wait_for(what: str, check, seconds: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while True:
        try:
            check()
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                sys.exit(f"{what} is not reachable: {exc}\n"
                         f"Start it, or point {'DATABASE_URL' if what == 'PostgreSQL' else 'REDIS_URL'} at one.")
            time.sleep(1)


def main() -> None:
    db_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pulse")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    parsed = urlparse(db_url)
    dbname = parsed.path.lstrip("/") or "pulse"
    admin_url = parsed._replace(path="/postgres").geturl()

    def pg() -> None:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{dbname}"')
                print(f"created database {dbname}")

    wait_for("PostgreSQL", pg)
    wait_for("Redis", lambda: redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping())
    print(f"PostgreSQL ({parsed.hostname}:{parsed.port or 5432}/{dbname}) and Redis ({redis_url}) are up")


if __name__ == "__main__":
    main()
