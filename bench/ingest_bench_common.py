"""Shared setup of the ingestion benchmarks: a separate database (pulse_bench), a fresh tenant on the
unlimited plan, servers and workers started as subprocesses on loopback. Not part of the test run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from pulse.lib.processes import group_stop

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")
BENCH_DB = os.environ.get("PULSE_BENCH_DB", "pulse_bench")
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}"
REDIS_URL = os.environ.get("PULSE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")


def bench_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, DATABASE_URL=DATABASE_URL, REDIS_URL=REDIS_URL, DJANGO_SETTINGS_MODULE="ingest_bench_settings",
               PYTHONPATH=f"{ROOT / 'bench'}:{ROOT}", DJANGO_DEBUG="0", PULSE_LOG_LEVEL="WARNING",
               PULSE_STATE_DIR=str(ROOT / ".pulse" / "bench"))
    env.update(extra)
    return env


def ensure_database() -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone():
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    for flag in ("--shared", "--tenant"):
        subprocess.run([PY, "manage.py", "migrate_schemas", flag, "-v", "0", "--skip-checks"], cwd=ROOT, env=bench_env(), check=True,
                       stdout=subprocess.DEVNULL)


_TENANT_SCRIPT = """
import json, django
django.setup()
from tenants.models import Tenant
from tenants.services import tenant_create
slug = {slug!r}
old = Tenant.objects.filter(slug=slug).first()
if old is not None:
    old.delete(force_drop=True)
tenant, key = tenant_create(slug=slug, name="Benchmark", plan="enterprise", timezone_name="UTC", currency="USD")
print(json.dumps({{"api_key": key, "schema": tenant.schema_name, "pk": tenant.pk}}))
"""


def fresh_tenant(slug: str) -> dict[str, Any]:
    """Drop and create the benchmark tenant (empty events table, unlimited plan)."""
    out = subprocess.run([PY, "-c", _TENANT_SCRIPT.format(slug=slug)], cwd=ROOT, env=bench_env(), check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_web(port: int, **env: str) -> subprocess.Popen[bytes]:
    """One web server process (`pulse.web`: uvicorn) on loopback."""
    return subprocess.Popen([PY, "-m", "pulse.web", "--port", str(port)],
                            cwd=ROOT, env=bench_env(**env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def wait_http(port: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status", timeout=2)
            return
        except urllib.error.HTTPError:
            return  # the server answers
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"server on port {port} did not start")


def stop(proc: subprocess.Popen[Any]) -> None:
    group_stop(proc, timeout=15)


def events_body(n: int, *, with_ids: str | None = None) -> list[dict[str, Any]]:
    """n realistic order/click/payment events (no event_id: the server makes unique ones)."""
    types = ["click", "order", "payment", "impression"]
    events = []
    for i in range(n):
        kind = types[i % 4]
        event: dict[str, Any] = {"type": kind, "timestamp": f"2026-11-20T{10 + i % 8:02d}:{i % 60:02d}:{i % 59:02d}Z",
                                 "customer_id": f"c{i % 997}", "channel": ["email", "ads", "seo"][i % 3],
                                 "campaign": f"camp{i % 17}", "product_id": f"p{i % 301}", "store_id": "s1",
                                 "country": "US", "session_id": f"s{i}"}
        if kind in ("order", "payment"):
            event.update({"amount": f"{10 + i % 90}.99", "order_id": f"o{i}", "payment_method": "card"})
        if with_ids:
            event["event_id"] = f"{with_ids}-{i}"
        events.append(event)
    return events


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result, separators=(",", ":")))
    sys.stdout.flush()
