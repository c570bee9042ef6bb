"""The Celery app. Every task is tenant-aware: the schema active when a task is enqueued travels in
a message header and is activated again around the task body, so a task enqueued under tenant A
reads and writes A's schema only."""

from __future__ import annotations

import importlib
import os
from typing import Any

from celery import Celery, Task

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pulse.settings.local")

SCHEMA_HEADER = "_schema_name"
# Apps may ship a `schedule.py` with a plain `SCHEDULE` dict (no Django imports) merged into beat.
SCHEDULE_MODULES = ("tenants", "ingestion", "scoring", "monitoring", "learning", "alerts", "insights")


class TenantTask(Task):
    """Base task: runs in the schema of the tenant that enqueued it."""

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        headers = dict(options.pop("headers", None) or {})
        if SCHEMA_HEADER not in headers:
            from django.db import connection

            headers[SCHEMA_HEADER] = getattr(connection, "schema_name", "public")
        options["headers"] = headers
        return super().apply_async(args, kwargs, **options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        schema = _schema_from_request(self.request)
        if not schema:
            # Called directly (not through a broker): keep the caller's schema.
            return self.run(*args, **kwargs)
        from django_tenants.utils import schema_context

        with schema_context(schema):
            return self.run(*args, **kwargs)


def _schema_from_request(request: Any) -> str | None:
    # With the Redis transport, custom headers are merged into the request itself.
    headers = getattr(request, "headers", None) or {}
    value = headers.get(SCHEMA_HEADER) if isinstance(headers, dict) else None
    return value or getattr(request, SCHEMA_HEADER, None)


def collect_beat_schedule() -> dict[str, Any]:
    schedule: dict[str, Any] = {}
    for app_label in SCHEDULE_MODULES:
        try:
            module = importlib.import_module(f"{app_label}.schedule")
        except ModuleNotFoundError as exc:
            if exc.name != f"{app_label}.schedule":
                raise
            continue
        schedule.update(getattr(module, "SCHEDULE", {}))
    return schedule


app = Celery("pulse", task_cls=TenantTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.conf.beat_schedule = collect_beat_schedule()


from celery.signals import worker_ready  # noqa: E402


@worker_ready.connect
def _announce_worker(sender: object = None, **_: object) -> None:
    from tenants.health import start_worker_heartbeat

    start_worker_heartbeat(getattr(sender, "hostname", None))
