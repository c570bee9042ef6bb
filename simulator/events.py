"""Event schema (DESIGN.md "Event") and a columnar, sorted event table.

Events are built per type as NumPy columns, merged once, sorted by timestamp, and
only turned into dicts lazily, one batch at a time, so a six-week scenario never
holds half a million dicts in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

FIELDS: tuple[str, ...] = (
    "event_id", "type", "timestamp", "customer_id", "session_id", "order_id", "channel", "campaign",
    "product_id", "store_id", "country", "amount", "currency", "quantity", "status", "ip", "device_id",
    "payment_method", "email_hash", "stock_level", "threshold", "metric", "value", "attributes",
)
EVENT_TYPES = ("impression", "click", "order", "payment", "order_status", "return", "stock", "metric")
# Tie-break for equal timestamps: an order precedes its payment, a payment its status.
TYPE_RANK = {t: i for i, t in enumerate(EVENT_TYPES)}

REQUIRED: dict[str, tuple[str, ...]] = {
    "impression": ("channel", "campaign", "quantity"),
    "click": ("session_id", "channel"),
    "order": ("order_id", "customer_id", "store_id", "amount", "currency", "quantity", "product_id",
              "attributes"),
    "payment": ("order_id", "customer_id", "store_id", "amount", "currency", "status", "payment_method",
                "ip", "device_id", "email_hash"),
    "order_status": ("order_id", "status"),
    "return": ("order_id", "customer_id", "amount", "currency", "product_id", "quantity"),
    "stock": ("product_id", "stock_level", "threshold"),
    "metric": ("metric", "value"),
}
ORDER_STATUSES = ("pending", "confirmed", "shipped", "delivered", "cancelled")
PAYMENT_STATUSES = ("succeeded", "failed")
_INT_FIELDS = ("quantity", "stock_level", "threshold")


def validate_event(ev: Mapping[str, Any]) -> list[str]:
    """Schema errors of one event (empty when valid). The simulator's own contract,
    stricter than ingestion's (which fills defaults): every generated event passes it."""
    errors: list[str] = []
    unknown = set(ev) - set(FIELDS)
    if unknown:
        errors.append(f"unknown fields {sorted(unknown)}")
    for name in ("event_id", "type", "timestamp"):
        if not ev.get(name):
            errors.append(f"{name} missing")
    etype = ev.get("type")
    if etype not in REQUIRED:
        return errors + [f"type {etype!r} unknown"]
    if isinstance(ev.get("event_id"), str) and len(ev["event_id"]) > 128:
        errors.append("event_id longer than 128")
    ts = ev.get("timestamp")
    if isinstance(ts, str):
        from datetime import datetime

        try:
            if datetime.fromisoformat(ts).tzinfo is None:
                errors.append("timestamp has no offset")
        except ValueError:
            errors.append("timestamp not ISO 8601")
    for name in REQUIRED[etype]:
        if ev.get(name) in (None, ""):
            errors.append(f"{name} required for {etype}")
    if "amount" in ev:
        amount = ev["amount"]
        try:
            dec = Decimal(amount) if isinstance(amount, str) else None
        except InvalidOperation:
            dec = None
        if dec is None or dec < 0 or dec.as_tuple().exponent != -2:
            errors.append("amount must be a non-negative decimal string with 2 places")
    for name in _INT_FIELDS:
        if name in ev and (not isinstance(ev[name], int) or isinstance(ev[name], bool) or ev[name] < 0):
            errors.append(f"{name} must be a non-negative integer")
    if etype == "order_status" and ev.get("status") not in ORDER_STATUSES:
        errors.append(f"order_status status {ev.get('status')!r}")
    if etype == "payment" and ev.get("status") not in PAYMENT_STATUSES:
        errors.append(f"payment status {ev.get('status')!r}")
    if etype == "order":
        items = (ev.get("attributes") or {}).get("items")
        if not items or not all({"product_id", "quantity", "unit_price"} <= set(i) for i in items):
            errors.append("order attributes.items needs product_id, quantity, unit_price")
    if "attributes" in ev and len(json.dumps(ev["attributes"])) > 4096:
        errors.append("attributes larger than 4 KB")
    return errors


def cents_to_str(cents: np.ndarray) -> np.ndarray:
    """Integer cents -> '12.30' strings (exact: no float formatting on money)."""
    c = np.asarray(cents, dtype=np.int64)
    return np.array([f"{v // 100}.{v % 100:02d}" for v in c.tolist()], dtype=object)


def format_ts(seconds: np.ndarray) -> np.ndarray:
    """Epoch seconds -> ISO 8601 UTC strings with an explicit '+00:00' offset."""
    s = np.datetime_as_string(np.asarray(seconds, dtype="datetime64[s]"), unit="s")
    return np.char.add(s.astype(str), "+00:00").astype(object)


def obj(values: Any, n: int | None = None) -> np.ndarray:
    """An object column; a scalar is broadcast to n rows."""
    if n is not None and (values is None or isinstance(values, str | int | float)):
        out = np.empty(n, dtype=object)
        out[:] = values
        return out
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values) if not isinstance(values, np.ndarray) else values
    return arr


class EventTableBuilder:
    """Collects per-type column frames; `build()` merges and sorts them once."""

    def __init__(self) -> None:
        self._frames: list[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]] = []

    def add(self, etype: str, ts: np.ndarray, event_ids: np.ndarray, **columns: Any) -> None:
        n = len(ts)
        if n == 0:
            return
        cols: dict[str, np.ndarray] = {"event_id": obj(event_ids), "type": obj(etype, n)}
        for name, values in columns.items():
            if name not in FIELDS:
                raise KeyError(name)
            col = obj(values, n)
            if len(col) != n:
                raise ValueError(f"{etype}.{name}: {len(col)} values for {n} events")
            cols[name] = col
        rank = np.full(n, TYPE_RANK[etype], dtype=np.int64)
        self._frames.append((np.asarray(ts, dtype=np.int64), rank, cols))

    def build(self) -> EventTable:
        if not self._frames:
            return EventTable(np.empty(0, np.int64), {})
        ts = np.concatenate([f[0] for f in self._frames])
        rank = np.concatenate([f[1] for f in self._frames])
        pos = np.arange(len(ts))
        # Stable total order: time, then type rank, then insertion order (itself deterministic).
        order = np.lexsort((pos, rank, ts))
        columns: dict[str, np.ndarray] = {}
        for name in FIELDS:
            if name == "timestamp":
                continue
            parts = [f[2][name] if name in f[2] else obj(None, len(f[0])) for f in self._frames]
            if any(name in f[2] for f in self._frames):
                columns[name] = np.concatenate(parts)[order]
        return EventTable(ts[order], columns)


class EventTable:
    """Sorted events as columns. Iterating yields event dicts (None fields omitted)."""

    def __init__(self, ts: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        self.ts = ts
        self.columns = columns

    def __len__(self) -> int:
        return len(self.ts)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for batch in self.batches():
            yield from batch

    def batches(self, size: int = 5000) -> Iterator[list[dict[str, Any]]]:
        names = [n for n in FIELDS if n == "timestamp" or n in self.columns]
        for lo in range(0, len(self.ts), size):
            hi = min(lo + size, len(self.ts))
            cols = [format_ts(self.ts[lo:hi]) if n == "timestamp" else self.columns[n][lo:hi] for n in names]
            yield [{k: v for k, v in zip(names, row, strict=True) if v is not None} for row in zip(*cols, strict=True)]

    def column(self, name: str) -> np.ndarray:
        if name == "timestamp":
            return self.ts
        return self.columns.get(name, obj(None, len(self.ts)))

    def mask(self, **equals: Any) -> np.ndarray:
        """Boolean mask of rows whose columns equal the given values (type="order", ...)."""
        m = np.ones(len(self.ts), dtype=bool)
        for name, value in equals.items():
            m &= self.column(name) == value
        return m
