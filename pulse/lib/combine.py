"""Requests that arrive together are served together: leader/follower batching across threads.

A synchronous endpoint whose cost is mostly per call, not per item (a transaction and its commit,
one Redis script call, NumPy's per-call overhead), serves concurrent callers far cheaper as one
batch. `Combiner.submit(key, item)` queues the item under `key` (a tenant); when no thread is
serving that key, the caller serves a batch at once (no timer: alone, a request is a batch of one
and waits for nothing). Items that arrive meanwhile wait; when the batch is done, the first of them
is woken to serve the next batch, which holds everything that queued up (up to `max_batch`). Under
light load batches stay at one; as load grows they grow with it, so the per-call cost is paid once
per batch instead of once per request: throughput rises exactly when a queue would otherwise form.

`run(key, items)` returns one result per item (in order); a `Failure(exc)` in place of a result
fails that item alone (its caller raises exc), an exception raised by `run` fails every item of the
batch with it. A leader serves one batch only, its own, and hands over: no caller waits for more
than the batch ahead of it plus its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Failure:
    """A result that fails its item alone: `submit` raises `error` in that item's caller."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Slot:
    __slots__ = ("item", "ready", "lead", "result", "error")

    def __init__(self, item: Any) -> None:
        self.item = item
        self.ready = threading.Event()  # set when the result is in, or when this slot must lead
        self.lead = False
        self.result: Any = None
        self.error: BaseException | None = None


class Combiner(Generic[T, R]):
    def __init__(self, run: Callable[[Any, Sequence[T]], Sequence[R]], *, max_batch: int = 8) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._run = run
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._queues: dict[Hashable, list[_Slot]] = {}
        self._serving: set[Hashable] = set()

    def submit(self, key: Hashable, item: T, context: Any = None) -> R:
        """Serve `item` in a batch of items with the same key; `context` (e.g. the tenant) is passed to
        `run` by the thread that serves the batch: it must be interchangeable within a key."""
        slot = _Slot(item)
        with self._lock:
            self._queues.setdefault(key, []).append(slot)
            lead = key not in self._serving
            if lead:
                self._serving.add(key)
        if not lead:
            slot.ready.wait()
            if not slot.lead:
                return self._outcome(slot)
        self._serve(key, context)
        return self._outcome(slot)

    def _serve(self, key: Hashable, context: Any) -> None:
        with self._lock:
            queue = self._queues[key]
            batch, queue[:] = queue[:self.max_batch], queue[self.max_batch:]
        try:
            results = self._run(context, [s.item for s in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"combined run returned {len(results)} results for {len(batch)} items")
            for s, r in zip(batch, results, strict=True):
                s.result = r
        except BaseException as exc:  # every caller of the batch sees the failure
            for s in batch:
                s.error = exc
        finally:
            with self._lock:
                queue = self._queues[key]
                if queue:
                    queue[0].lead = True
                    queue[0].ready.set()
                else:
                    del self._queues[key]
                    self._serving.discard(key)
            for s in batch:
                s.lead = False
                s.ready.set()

    @staticmethod
    def _outcome(slot: _Slot) -> Any:
        if slot.error is not None:
            raise slot.error
        if isinstance(slot.result, Failure):
            raise slot.result.error
        return slot.result
