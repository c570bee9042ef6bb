from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from simulator.labels import parse_time
from simulator.replay import TimeShift, iter_batches, live_batches, shift_to_now
from tests.simulator._scenarios import small, small_events


def test_iter_batches_keeps_order_and_count() -> None:
    evs = small_events()
    batches = list(iter_batches(small().events, 1000))
    assert [len(b) for b in batches[:-1]] == [1000] * (len(batches) - 1)
    assert [e for b in batches for e in b] == list(evs)
    with pytest.raises(ValueError):
        list(iter_batches(evs, 0))


def test_table_batches_match_iteration() -> None:
    assert [e for b in small().events.batches(777) for e in b] == list(small_events())


def test_shift_to_now() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    shift, shifted = shift_to_now(small_events()[:100], origin=small().start, speedup=60, now=now,
                                  id_suffix="-live1")
    out = list(shifted)
    first = parse_time(small_events()[0]["timestamp"])
    assert parse_time(out[0]["timestamp"]) == now + (first - small().start) / 60
    assert all(e["event_id"].endswith("-live1") for e in out)
    gap = parse_time(out[-1]["timestamp"]) - parse_time(out[0]["timestamp"])
    orig = parse_time(small_events()[99]["timestamp"]) - first
    assert gap == orig / 60
    lab = shift.label(small().labels[0])
    assert lab.start == shift(small().labels[0].start)
    assert all(e.endswith("-live1") for e in lab.event_ids)


def test_time_shift_identity() -> None:
    t = datetime(2024, 1, 1, tzinfo=UTC)
    s = TimeShift(origin_old=t, origin_new=t)
    assert s(t + timedelta(hours=1)) == t + timedelta(hours=1)


def test_live_batches_paces_with_a_fake_clock() -> None:
    evs = small_events()[:400]
    clock = {"t": 1_000_000.0}
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        clock["t"] += s

    batches = list(live_batches(evs, origin=parse_time(evs[0]["timestamp"]), speedup=600, max_batch=50,
                                clock=lambda: clock["t"], sleep=sleep))
    flat = [e for b in batches for e in b]
    assert [e["event_id"] for e in flat] == [e["event_id"] for e in evs]
    assert max(len(b) for b in batches) <= 50
    span = (parse_time(evs[-1]["timestamp"]) - parse_time(evs[0]["timestamp"])).total_seconds() / 600
    assert sum(slept) == pytest.approx(span, abs=1.0)
    # every event is sent no earlier than its shifted time
    assert parse_time(flat[-1]["timestamp"]).timestamp() <= clock["t"] + 1e-6
