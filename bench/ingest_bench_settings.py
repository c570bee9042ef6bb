"""Settings of the ingestion benchmarks: production-like (DEBUG off) plus the naive DRF baseline URL."""

from __future__ import annotations

from pulse.settings.local import *  # noqa: F403

DEBUG = False
ROOT_URLCONF = "drf_baseline"
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
# Measure ingestion itself: no scoring/rollup consumers behind the batches.
PULSE_BATCH_CONSUMERS: list[str] = []
# Under ASGI every request runs in a fresh thread, so Django's per-thread persistent connections
# (CONN_MAX_AGE) reconnect on every request (~15-20 ms). Django 5.1+ psycopg pooling fixes that.
import os as _os  # noqa: E402

if _os.environ.get("PULSE_BENCH_DB_POOL", "1") == "1":
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False  # noqa: F405  (as PULSE_DB_POOL=1 in production)
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 2, "max_size": 8}  # noqa: F405
