"""Tenant isolation cases: every endpoint that reads or changes tenant data registers a case here
(or in `tests/<app>/isolation_cases.py` as ISOLATION_CASES) and tests/tenants/test_isolation.py checks
that tenant A's key never sees or touches tenant B's objects."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class IsolationCase:
    name: str
    method: str
    # Builds the path from what `seed_b` created in tenant B (e.g. an object id).
    path: Callable[[dict[str, Any]], str]
    # Runs inside tenant B's schema and returns markers: values that must never show in A's answer.
    seed_b: Callable[[Any], dict[str, Any]]
    body: dict[str, Any] | None = None
    # Allowed statuses for A's request: 404 for B's object ids, 200 with nothing of B's for lists.
    allowed_status: tuple[int, ...] = (200, 404)
    # Optional check, run in B's schema after the request, that B's objects were not changed.
    verify_b: Callable[[Any, dict[str, Any]], None] | None = None


CORE_CASES: list[IsolationCase] = []


def all_cases() -> list[IsolationCase]:
    cases = list(CORE_CASES)
    for app in ("tenants", "ingestion", "scoring", "monitoring", "learning", "alerts", "insights"):
        try:
            module = importlib.import_module(f"tests.{app}.isolation_cases")
        except ModuleNotFoundError as exc:
            if exc.name not in (f"tests.{app}", f"tests.{app}.isolation_cases"):
                raise
            continue
        cases.extend(module.ISOLATION_CASES)
    return cases
