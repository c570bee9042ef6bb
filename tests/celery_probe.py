"""A task only the tests load (`celery worker --include tests.celery_probe`): it writes into whatever
schema is active, which must be the schema of the tenant that enqueued it."""

from __future__ import annotations

from celery import shared_task
from django.db import connection


@shared_task(name="tests.probe_write")
def probe_write(marker: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS celery_probe (marker text, schema text)")
        cursor.execute("INSERT INTO celery_probe VALUES (%s, current_schema())", [marker])
    return connection.schema_name
