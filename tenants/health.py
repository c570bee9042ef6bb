"""Platform health: database, Redis, Celery workers (heartbeat keys) and queue depth."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from django.conf import settings
from django.db import connection

from pulse.lib.health import register
from pulse.lib.redis import get_redis

WORKER_KEY = "pulse:worker:"
HEARTBEAT_SECONDS = 10


@register("database")
def check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True, "schema": connection.schema_name}


@register("redis")
def check_redis() -> dict[str, Any]:
    return {"ok": bool(get_redis().ping())}


@register("workers")
def check_workers() -> dict[str, Any]:
    names = sorted(k.decode()[len(WORKER_KEY):] for k in get_redis().scan_iter(f"{WORKER_KEY}*", count=100))
    return {"ok": bool(names), "alive": len(names), "names": names}


@register("queue")
def check_queue() -> dict[str, Any]:
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    import redis

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2)
    return {"ok": True, "depth": int(broker.llen(queue))}


def start_worker_heartbeat(hostname: str | None = None) -> threading.Thread:
    """Called in each Celery worker: a key with a TTL that says the worker is alive."""
    name = hostname or socket.gethostname()

    def beat() -> None:
        client = get_redis()
        while True:
            try:
                client.set(f"{WORKER_KEY}{name}", str(time.time()), ex=HEARTBEAT_SECONDS * 3)
            except Exception:  # Redis down: the status endpoint reports it; keep trying
                pass
            time.sleep(HEARTBEAT_SECONDS)

    thread = threading.Thread(target=beat, name="pulse-heartbeat", daemon=True)
    thread.start()
    return thread
