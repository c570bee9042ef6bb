"""Work a request may leave for just after its answer: bookkeeping whose loss something else repairs.

One daemon thread per process runs the deferred calls in order. Only for work that is safe to lose
when the process dies: a batch that was never handed over is handed over again by
`ingestion.batches_sweep`; a calibration sample that never arrived is one sample fewer. With
`PULSE_DEFER_AFTER_RESPONSE` off (the tests) or in an eager Celery setup, calls run at once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)
_executor: ThreadPoolExecutor | None = None


def _run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    try:
        fn(*args, **kwargs)
    except Exception:  # noqa: BLE001 - deferred bookkeeping must not kill the thread; it is repaired elsewhere
        log.exception("deferred call %s failed", getattr(fn, "__qualname__", fn))
    finally:
        close_old_connections()


def after_response(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[None] | None:
    """Run fn(*args, **kwargs) soon on the process's background thread (or now, see the module doc).
    fn must not need the caller's database connection or tenant schema: pass what it needs."""
    global _executor
    if not settings.PULSE_DEFER_AFTER_RESPONSE or settings.CELERY_TASK_ALWAYS_EAGER:
        fn(*args, **kwargs)
        return None
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pulse-after-response")
    return _executor.submit(_run, fn, args, kwargs)


# (fn, key) -> items waiting for the flush that the first of them scheduled.
_gathered: dict[tuple[Callable[..., Any], Hashable], list[Any]] = {}
_gathered_lock = threading.Lock()


def after_response_gathered(fn: Callable[[Hashable, list[Any]], Any], key: Hashable, item: Any) -> None:
    """Like `after_response`, for bookkeeping a busy endpoint does per request: the items given for
    the same (fn, key) within PULSE_HAND_OVER_COALESCE_SECONDS are handed over together, as
    fn(key, items) in arrival order, so one Redis pipeline or one Celery message serves a burst of
    requests. Runs fn(key, [item]) at once where `after_response` would run at once."""
    if not settings.PULSE_DEFER_AFTER_RESPONSE or settings.CELERY_TASK_ALWAYS_EAGER:
        fn(key, [item])
        return
    with _gathered_lock:
        waiting = _gathered.get((fn, key))
        if waiting is not None:
            waiting.append(item)
            return
        _gathered[(fn, key)] = [item]
    timer = threading.Timer(settings.PULSE_HAND_OVER_COALESCE_SECONDS, after_response, args=(_flush, fn, key))
    timer.daemon = True
    timer.start()


def _flush(fn: Callable[[Hashable, list[Any]], Any], key: Hashable) -> None:
    with _gathered_lock:
        items = _gathered.pop((fn, key))
    fn(key, items)
