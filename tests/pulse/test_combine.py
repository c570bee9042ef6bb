"""Leader/follower batching across threads (pulse.lib.combine)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

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


class Busy:
    """A combiner on key "t1" whose first call is being served and held: what `queue` submits
    waits behind it (each call on its own thread) until `release`."""

    def __init__(self, max_batch: int, first: int = 1,
                 results: Callable[[Sequence[int]], list[object]] | None = None) -> None:
        self.run = Recorder(hold_first=True)
        run = self.run if results is None else (lambda ctx, items: self.run(ctx, items) and results(items))
        self.combiner = Combiner(run, max_batch=max_batch)
        self.threads, self.first = submit_in_threads(self.combiner, "t1", [first])
        assert self.run.entered.wait(10)
        self.queued = 0

    def queue(self, items: list[int]) -> dict:
        threads, out = submit_in_threads(self.combiner, "t1", items)
        self.threads += threads
        self.queued += len(items)
        wait_queued(self.combiner, "t1", self.queued)
        return out

    def release(self) -> list[list[int]]:
        """Let the batches run; the items of each batch, in the order they were served."""
        self.run.release.set()
        for t in self.threads:
            t.join(10)
        return [items for _, items in self.run.batches]


def test_calls_arriving_while_a_batch_runs_are_served_together_each_getting_its_own_result():
    busy = Busy(max_batch=8)
    others = busy.queue([2, 3, 4, 5, 6])
    assert [sorted(b) for b in busy.release()] == [[1], [2, 3, 4, 5, 6]]
    assert busy.first == {1: 10} and others == {2: 20, 3: 30, 4: 40, 5: 50, 6: 60}
    assert not busy.combiner._queues and not busy.combiner._serving


def test_batches_are_capped_and_the_rest_follow_in_arrival_order():
    busy = Busy(max_batch=2, first=0)
    for i in (1, 2, 3, 4, 5):  # one at a time: a known arrival order
        busy.queue([i])
    assert busy.release() == [[0], [1, 2], [3, 4], [5]]


def test_a_failing_batch_fails_each_of_its_calls_and_the_next_batch_still_runs():
    busy = Busy(max_batch=2)
    bad, good, later = busy.queue([-2]), busy.queue([3]), busy.queue([4])
    busy.release()
    assert busy.first == {1: 10}
    assert isinstance(bad[-2], ValueError) and isinstance(good[3], ValueError)  # same batch
    assert later == {4: 40}
    assert not busy.combiner._serving


def test_a_failure_result_fails_its_own_call_only():
    busy = Busy(max_batch=8, results=lambda items: [Failure(KeyError(i)) if i == 2 else i for i in items])
    rest = busy.queue([2, 3])
    assert [sorted(b) for b in busy.release()] == [[1], [2, 3]]
    assert busy.first == {1: 1} and rest[3] == 3 and isinstance(rest[2], KeyError)


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
