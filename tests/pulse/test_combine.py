"""Leader/follower batching across threads (pulse.lib.combine)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from pulse.lib.combine import Combiner, Failure


class Recorder:
    """A `run` that records its batches and can be held at the start of a given batch."""

    def __init__(self, hold_first: bool = False) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, context: str, items: Sequence[int]) -> list[int]:
        self.batches.append((context, list(items)))
        self.entered.set()
        assert self.release.wait(10)
        if any(i < 0 for i in items):
            raise ValueError(f"negative in {list(items)}")
        return [i * 10 for i in items]


def submit_in_threads(combiner: Combiner, key: str, items: list[int]) -> tuple[list[threading.Thread], dict]:
    out: dict[int, object] = {}

    def call(i: int) -> None:
        try:
            out[i] = combiner.submit(key, i, context=key)
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            out[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in items]
    for t in threads:
        t.start()
    return threads, out


def wait_queued(combiner: Combiner, key: str, n: int) -> None:
    deadline = time.monotonic() + 10
    while len(combiner._queues.get(key, [])) < n:
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_a_lone_call_is_a_batch_of_one_and_waits_for_nothing():
    run = Recorder()
    combiner = Combiner(run, max_batch=8)
    assert combiner.submit("t1", 4, context="t1") == 40
    assert combiner.submit("t1", 5, context="t1") == 50
    assert run.batches == [("t1", [4]), ("t1", [5])]
    assert not combiner._queues and not combiner._serving


def test_calls_arriving_while_a_batch_runs_are_served_together_each_getting_its_own_result():
    run = Recorder(hold_first=True)
    combiner = Combiner(run, max_batch=8)
    first, out = submit_in_threads(combiner, "t1", [1])
    assert run.entered.wait(10)
    others, out2 = submit_in_threads(combiner, "t1", [2, 3, 4, 5, 6])
    wait_queued(combiner, "t1", 5)
    run.release.set()
    for t in first + others:
        t.join(10)
    assert out == {1: 10} and out2 == {2: 20, 3: 30, 4: 40, 5: 50, 6: 60}
    assert [sorted(items) for _, items in run.batches] == [[1], [2, 3, 4, 5, 6]]
    assert not combiner._queues and not combiner._serving


def test_batches_are_capped_and_the_rest_follow_in_arrival_order():
    run = Recorder(hold_first=True)
    combiner = Combiner(run, max_batch=2)
    first, _ = submit_in_threads(combiner, "t1", [0])
    assert run.entered.wait(10)
    waiting = []
    for i in (1, 2, 3, 4, 5):  # one at a time: a known arrival order
        threads, _ = submit_in_threads(combiner, "t1", [i])
        waiting += threads
        wait_queued(combiner, "t1", i)
    run.release.set()
    for t in first + waiting:
        t.join(10)
    assert [items for _, items in run.batches] == [[0], [1, 2], [3, 4], [5]]


def test_a_failing_batch_fails_each_of_its_calls_and_the_next_batch_still_runs():
    run = Recorder(hold_first=True)
    combiner = Combiner(run, max_batch=2)
    first, out = submit_in_threads(combiner, "t1", [1])
    assert run.entered.wait(10)
    bad, out_bad = submit_in_threads(combiner, "t1", [-2])
    wait_queued(combiner, "t1", 1)
    good, out_good = submit_in_threads(combiner, "t1", [3])
    wait_queued(combiner, "t1", 2)
    later, out_later = submit_in_threads(combiner, "t1", [4])
    wait_queued(combiner, "t1", 3)
    run.release.set()
    for t in first + bad + good + later:
        t.join(10)
    assert out == {1: 10}
    assert isinstance(out_bad[-2], ValueError) and isinstance(out_good[3], ValueError)  # same batch
    assert out_later == {4: 40}
    assert not combiner._serving


def test_a_failure_result_fails_its_own_call_only():
    def run(ctx: str, items: Sequence[int]) -> list[object]:
        return [Failure(KeyError(i)) if i == 2 else i for i in items]

    run_rec = Recorder(hold_first=True)
    combiner = Combiner(lambda ctx, items: run_rec(ctx, items) and run(ctx, items), max_batch=8)
    first, out = submit_in_threads(combiner, "t1", [1])
    assert run_rec.entered.wait(10)
    rest, out_rest = submit_in_threads(combiner, "t1", [2, 3])
    wait_queued(combiner, "t1", 2)
    run_rec.release.set()
    for t in first + rest:
        t.join(10)
    assert [sorted(items) for _, items in run_rec.batches] == [[1], [2, 3]]
    assert out == {1: 1} and out_rest[3] == 3 and isinstance(out_rest[2], KeyError)


def test_keys_are_served_independently():
    held = Recorder(hold_first=True)
    free = Recorder()
    combiner = Combiner(lambda ctx, items: (held if ctx == "slow" else free)(ctx, items), max_batch=8)
    slow, out_slow = submit_in_threads(combiner, "slow", [1])
    assert held.entered.wait(10)
    assert combiner.submit("fast", 7, context="fast") == 70  # not queued behind the other tenant
    held.release.set()
    for t in slow:
        t.join(10)
    assert out_slow == {1: 10}


def test_max_batch_must_be_positive():
    with pytest.raises(ValueError):
        Combiner(lambda ctx, items: list(items), max_batch=0)
