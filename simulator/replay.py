"""Helpers for replaying a scenario into a running platform (the `simulate` command).

Backfill: `iter_batches(scenario.events, 1000)` and POST each batch.
Live: `live_batches(scenario.events, speedup=60)` shifts the first event to "now" and
yields each batch when its (shifted, sped-up) time has come. Labels are shifted with
the same `TimeShift` so a live run can still be evaluated.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from simulator.labels import EventLabel, Label, parse_time


def iter_batches(events: Iterable[dict[str, Any]], size: int = 1000) -> Iterator[list[dict[str, Any]]]:
    """Consecutive batches in the given (timestamp) order; the last one may be short."""
    if size <= 0:
        raise ValueError("size must be positive")
    batch: list[dict[str, Any]] = []
    for ev in events:
        batch.append(ev)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True)
class TimeShift:
    """Maps scenario time t to origin_new + (t - origin_old) / speedup."""

    origin_old: datetime
    origin_new: datetime
    speedup: float = 1.0
    id_suffix: str = ""  # appended to event ids so a second live run is not deduplicated away

    def __call__(self, t: datetime) -> datetime:
        return self.origin_new + (t - self.origin_old) / self.speedup

    def event(self, ev: dict[str, Any]) -> dict[str, Any]:
        out = dict(ev)
        out["timestamp"] = self(parse_time(ev["timestamp"])).isoformat()
        if self.id_suffix:
            out["event_id"] = f"{ev['event_id']}{self.id_suffix}"
        return out

    def label(self, lab: Label) -> Label:
        return replace(lab, start=self(lab.start), end=self(lab.end),
                       known_at=self(lab.known_at) if lab.known_at else None,
                       event_ids=tuple(f"{e}{self.id_suffix}" for e in lab.event_ids))

    def event_label(self, el: EventLabel) -> EventLabel:
        return replace(el, event_id=f"{el.event_id}{self.id_suffix}", known_at=self(el.known_at))


def shift_events(events: Iterable[dict[str, Any]], shift: TimeShift) -> Iterator[dict[str, Any]]:
    for ev in events:
        yield shift.event(ev)


def shift_to_now(events: Iterable[dict[str, Any]], *, origin: datetime, speedup: float = 1.0,
                 now: datetime | None = None, id_suffix: str = "") -> tuple[TimeShift, Iterator[dict[str, Any]]]:
    """Shift so that scenario time `origin` (usually its start) becomes `now`."""
    shift = TimeShift(origin_old=origin, origin_new=now or datetime.now(UTC), speedup=speedup,
                      id_suffix=id_suffix)
    return shift, shift_events(events, shift)


def live_batches(events: Iterable[dict[str, Any]], *, origin: datetime, speedup: float = 1.0,
                 max_batch: int = 500, id_suffix: str = "", clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> Iterator[list[dict[str, Any]]]:
    """Yield shifted events in batches as their shifted timestamps come due.

    A batch is flushed when the next event is not yet due or `max_batch` is reached,
    so at speedup 1 events arrive in (near) real time and at speedup 3600 an hour of
    shop activity is sent each second.
    """
    shift = TimeShift(origin_old=origin, origin_new=datetime.fromtimestamp(clock(), UTC), speedup=speedup,
                      id_suffix=id_suffix)
    batch: list[dict[str, Any]] = []
    for ev in events:
        shifted = shift.event(ev)
        due = parse_time(shifted["timestamp"]).timestamp()
        wait = due - clock()
        if wait > 0:
            if batch:
                yield batch
                batch = []
            sleep(wait)
        batch.append(shifted)
        if len(batch) >= max_batch:
            yield batch
            batch = []
    if batch:
        yield batch


def scenario_duration_at(speedup: float, start: datetime, end: datetime) -> timedelta:
    """Wall-clock time a live replay takes at `speedup`."""
    return (end - start) / speedup
