"""Health checks shown by GET /api/v1/status. Apps register extra checks (e.g. ingest lag) here."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

HealthCheck = Callable[[], dict[str, Any]]
_checks: dict[str, HealthCheck] = {}


def register(name: str) -> Callable[[HealthCheck], HealthCheck]:
    def decorator(fn: HealthCheck) -> HealthCheck:
        _checks[name] = fn
        return fn

    return decorator


def run_checks() -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for name, fn in _checks.items():
        started = time.perf_counter()
        try:
            result = fn()
        except Exception as exc:  # a failing dependency is reported, not raised
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        result.setdefault("ok", True)
        result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
        results[name] = result
    return results
