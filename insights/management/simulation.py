"""What the `simulate`, `evaluate_scenario` and `demo_feed` commands share: loading a scenario in the
tenant's currency, replaying it (backfill, live by event time, live at a fixed rate), shifting its
labels, and waiting until the platform has digested a replay.

No Django imports: everything goes through the public HTTP API (`simulator.client`), so the commands
measure exactly what an integrator gets, and these helpers are testable against any server.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from simulator import Scenario, ScenarioConfig, load_config
from simulator.client import IngestCounts, PulseClient, PulseClientError, rate_batches, send_batches
from simulator.events import EventTable
from simulator.labels import LabelSet, parse_time
from simulator.replay import TimeShift, live_batches

Progress = Callable[[int, Mapping[str, Any]], None]


def quiet_http_logs() -> None:
    """httpx logs every request at INFO: thousands of lines during a replay drown the progress bar."""
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)


# ---------------------------------------------------------------------------------------- scenario

def scenario_config(name_or_path: str, *, seed: int | None = None, currency: str | None = None,
                    **overrides: Any) -> ScenarioConfig:
    """A bundled scenario or a YAML path; `currency` relabels amounts (the tenant's currency, so
    ingestion does not refuse them for want of an exchange rate)."""
    if seed is not None:
        overrides["seed"] = seed
    if currency:
        overrides["currency"] = currency
    return load_config(name_or_path, **overrides)


def tenant_currency(client: PulseClient, scenario_currency: str, *, log: Callable[[str], None]) -> str | None:
    """The currency to generate in: the tenant's, unless it converts the scenario's currency itself.

    None when the key cannot read the tenant (an ingest-only key): the scenario's currency is kept."""
    try:
        tenant = client.tenant()
    except PulseClientError as exc:
        log(f"cannot read the tenant ({exc}); keeping the scenario currency {scenario_currency}")
        return None
    rates = ((tenant.get("config") or {}).get("scoring") or {}).get("fx_rates") or {}
    if tenant.get("currency") == scenario_currency or scenario_currency in rates:
        return None
    return str(tenant.get("currency")) if tenant.get("currency") else None


def table_slice(table: EventTable, mask: np.ndarray) -> EventTable:
    """The rows of `table` where `mask` holds (still sorted by time)."""
    return EventTable(table.ts[mask], {name: col[mask] for name, col in table.columns.items()})


def fresh_suffix(now: float | None = None) -> str:
    """An id suffix unique per run (to the millisecond), so a live run is not deduplicated away."""
    return f"-live{int((now if now is not None else time.time()) * 1000):x}"


def shifted_label_set(scenario: Scenario, shift: TimeShift | None) -> LabelSet:
    """The scenario's labels as the platform saw them (times and event ids shifted)."""
    ls = scenario.label_set()
    if shift is None:
        return ls
    meta = dict(ls.meta)
    meta.update(start=shift(scenario.start).isoformat(), end=shift(scenario.end).isoformat(),
                shifted_from=ls.meta.get("start"), speedup=shift.speedup, id_suffix=shift.id_suffix)
    return LabelSet(labels=[shift.label(lab) for lab in ls.labels],
                    event_labels=[shift.event_label(e) for e in ls.event_labels],
                    truth={f"{k}{shift.id_suffix}": v for k, v in ls.truth.items()}, meta=meta)


# ---------------------------------------------------------------------------------------- progress

class ProgressBar:
    """A tqdm bar on stderr with the running ingest counts as its postfix."""

    def __init__(self, total: int | None, desc: str, *, enabled: bool = True) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="ev", unit_scale=True, file=sys.stderr, disable=not enabled,
                        mininterval=0.5, dynamic_ncols=True)
        self.counts = IngestCounts()

    def __call__(self, n: int, answer: Mapping[str, Any]) -> None:
        self.counts.add(n, answer, keep=0)
        self.bar.update(n)
        self.bar.set_postfix(accepted=self.counts.accepted, dup=self.counts.duplicates,
                             rejected=self.counts.rejected, refresh=False)

    def close(self) -> None:
        self.bar.close()


# ---------------------------------------------------------------------------------------- replay

@dataclass
class ReplayResult:
    counts: IngestCounts
    shift: TimeShift | None
    seconds: float
    stopped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        rate = self.counts.sent / self.seconds if self.seconds > 0 else None
        return {**self.counts.summary(), "seconds": round(self.seconds, 3),
                "events_per_second": round(rate, 1) if rate else None, **self.extra}


def backfill(client: PulseClient, events: EventTable, *, batch: int = 1000, on_batch: Progress | None = None,
             stop: threading.Event | None = None) -> ReplayResult:
    """Send every event as fast as the platform takes them, in timestamp order."""
    t0 = time.perf_counter()
    counts = send_batches(client, events.batches(batch), on_batch=on_batch, stop=stop)
    return ReplayResult(counts=counts, shift=None, seconds=time.perf_counter() - t0,
                        stopped=bool(stop and stop.is_set()))


def pinned_clock(t0: float, clock: Callable[[], float] = time.time) -> Callable[[], float]:
    """A clock whose first reading is `t0`: `replay.live_batches` takes its origin from the first
    reading, so pinning it lets the caller know (and reuse) the exact TimeShift of the run."""
    first = [True]

    def read() -> float:
        if first[0]:
            first[0] = False
            return t0
        return clock()

    return read


def interruptible_sleep(stop: threading.Event | None) -> Callable[[float], None]:
    """A sleep that a stop request (SIGTERM) cuts short."""
    if stop is None:
        return time.sleep

    def sleep(seconds: float) -> None:
        stop.wait(seconds)

    return sleep


def live(client: PulseClient, events: EventTable, *, origin: datetime, speedup: float = 1.0,
         rate: float | None = None, batch: int = 500, id_suffix: str = "", start_at: float | None = None,
         on_batch: Progress | None = None, stop: threading.Event | None = None) -> ReplayResult:
    """Replay with timestamps shifted so that scenario time `origin` is now (`start_at`).

    By event time (`rate` None): each event is sent when its shifted, sped-up time comes.
    At a fixed `rate` (events/s): events go out on that schedule, their timestamps still follow the
    shift; a timestamp the sender has not reached yet is clamped to the send time, because the
    platform refuses events from the future and a live feed cannot report what has not happened."""
    t0 = start_at if start_at is not None else time.time()
    shift = TimeShift(origin_old=origin, origin_new=datetime.fromtimestamp(t0, UTC), speedup=speedup,
                      id_suffix=id_suffix)
    sleep = interruptible_sleep(stop)
    started = time.perf_counter()
    batches: Iterator[list[dict[str, Any]]]
    if rate is None:
        batches = live_batches(events, origin=origin, speedup=speedup, max_batch=batch, id_suffix=id_suffix,
                               clock=pinned_clock(t0), sleep=sleep)
    else:
        batches = (_clamp_to_now(b) for b in rate_batches((shift.event(e) for e in events), rate=rate,
                                                          max_batch=batch, sleep=sleep))
    counts = send_batches(client, _until_stopped(batches, stop), on_batch=on_batch, stop=stop)
    return ReplayResult(counts=counts, shift=shift, seconds=time.perf_counter() - started,
                        stopped=bool(stop and stop.is_set()),
                        extra={"id_suffix": id_suffix, "speedup": speedup, "rate": rate,
                               "origin": shift.origin_new.isoformat()})


def _until_stopped(batches: Iterable[list[dict[str, Any]]], stop: threading.Event | None) -> Iterator[list[dict[str, Any]]]:
    for b in batches:
        if stop is not None and stop.is_set():
            return
        yield b


def _clamp_to_now(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    for ev in batch:
        if parse_time(ev["timestamp"]) > now:
            ev["timestamp"] = now.isoformat()
    return batch


def rate_speedup(events: EventTable, rate: float) -> float:
    """The speedup at which event time passes as fast as a fixed-rate replay sends: with it, fixed-rate
    timestamps stay close to the send time on average."""
    if len(events) < 2:
        return 1.0
    span = float(events.ts[-1] - events.ts[0])
    return max(1.0, rate * span / len(events)) if span > 0 else 1.0


# ---------------------------------------------------------------------------------------- waiting

_BUSY_KEYS = ("depth", "pending", "pending_batches", "backlog", "in_flight")


def busy_reasons(status: Mapping[str, Any]) -> list[str]:
    """Why the platform is still working, from `GET /api/v1/status` ([] = idle as far as it says).

    Reads the queue depth and any check that reports pending work under a common name, so an ingest-lag
    check added later (e.g. {"pending_batches": 3, "lag_seconds": 12}) is honoured without a change here."""
    reasons = []
    for name, check in (status.get("checks") or {}).items():
        if not isinstance(check, Mapping):
            continue
        for key in _BUSY_KEYS:
            value = check.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                reasons.append(f"{name}.{key}={value}")
    return reasons


def find_key(data: Any, key: str) -> Any:
    """The first value stored under `key` anywhere in a JSON document (depth first), else None."""
    if isinstance(data, Mapping):
        if key in data:
            return data[key]
        for value in data.values():
            found = find_key(value, key)
            if found is not None:
                return found
    elif isinstance(data, list):
        for value in data:
            found = find_key(value, key)
            if found is not None:
                return found
    return None


@dataclass
class WaitResult:
    settled: bool
    seconds: float
    anomalies: int | None
    last_status: dict[str, Any]
    busy: list[str]


def count_anomalies(client: PulseClient) -> int | None:
    """How many anomalies the tenant has; None while the endpoint does not exist (404)."""
    try:
        return sum(len(page) for page in client.iter_pages("/api/v1/anomalies", limit=1000))
    except PulseClientError as exc:
        if exc.status_code == 404:
            return None
        raise


def wait_for_processing(client: PulseClient, *, timeout: float, stable_seconds: float = 30.0,
                        poll: float = 3.0, log: Callable[[str], None] = lambda _m: None,
                        clock: Callable[[], float] = time.monotonic,
                        sleep: Callable[[float], None] = time.sleep) -> WaitResult:
    """Poll until the status reports no pending work AND the anomaly count has not moved for
    `stable_seconds` (a worker can hold prefetched tasks while the queue reads empty, and KPI detection
    runs after the batches, so an empty queue alone does not mean done); give up after `timeout`."""
    start = clock()
    last_count: int | None = None
    stable_since: float | None = None
    status: dict[str, Any] = {}
    busy: list[str] = []
    while True:
        status = client.status()
        busy = busy_reasons(status)
        count = count_anomalies(client)
        now = clock()
        if busy:
            stable_since = None
        elif count != last_count or stable_since is None:
            stable_since = now
        last_count = count
        if stable_since is not None and now - stable_since >= stable_seconds:
            return WaitResult(True, now - start, count, status, busy)
        if now - start >= timeout:
            return WaitResult(False, now - start, count, status, busy)
        log(f"waiting: anomalies={count} busy={','.join(busy) or 'no'}")
        sleep(poll)


def series_for_plots(client: PulseClient, metrics: Iterable[str], *, start: datetime, end: datetime,
                     events: EventTable | None = None,
                     log: Callable[[str], None] = lambda _m: None) -> tuple[dict[str, list[tuple[Any, float]]], str]:
    """KPI series from `GET /api/v1/metrics`; if the platform cannot serve one, the simulator's own
    series from the events (named as such in the report)."""
    from simulator.series import METRICS, kpi_series

    out: dict[str, list[tuple[Any, float]]] = {}
    sources: dict[str, str] = {}
    for metric in metrics:
        try:
            points = client.metric_series(metric, start=start.isoformat(), end=end.isoformat())
            if points:
                out[metric], sources[metric] = points, "platform"
                continue
        except PulseClientError as exc:
            log(f"metrics {metric}: {exc}")
        if events is not None and metric in METRICS:
            out[metric], sources[metric] = kpi_series(events, metric, start=start, end=end), "simulator"
    source = ", ".join(f"{m}: {s}" for m, s in sources.items())
    return out, source


def nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nan_to_none(v) for v in value]
    return value


def write_json(path: Path, data: Any) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nan_to_none(data), indent=1, default=str, ensure_ascii=False) + "\n",
                    encoding="utf-8")
