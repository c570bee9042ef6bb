"""pulse.lib.background: deferred calls run after the caller, in order, on one background thread."""

from __future__ import annotations

import threading

from pulse.lib import background


def test_deferred_calls_run_in_order_on_the_background_thread(settings):  # type: ignore[no-untyped-def]
    settings.PULSE_DEFER_AFTER_RESPONSE = True
    release = threading.Event()
    seen: list[tuple[str, str]] = []

    def step(name: str) -> None:
        release.wait(5)
        seen.append((name, threading.current_thread().name))

    first = background.after_response(step, "first")
    second = background.after_response(step, name="second")
    assert seen == []  # the caller did not wait for them
    release.set()
    assert first is not None and second is not None
    second.result(timeout=5)
    assert [name for name, _ in seen] == ["first", "second"]
    assert all(thread.startswith("pulse-after-response") for _, thread in seen)


def test_a_failing_call_is_logged_and_does_not_stop_the_next(settings, caplog):  # type: ignore[no-untyped-def]
    settings.PULSE_DEFER_AFTER_RESPONSE = True
    seen: list[int] = []

    def boom() -> None:
        raise RuntimeError("lost bookkeeping")

    background.after_response(boom)
    done = background.after_response(seen.append, 1)
    assert done is not None
    done.result(timeout=5)
    assert seen == [1]
    assert "lost bookkeeping" in caplog.text


def test_off_runs_at_once(settings):  # type: ignore[no-untyped-def]
    settings.PULSE_DEFER_AFTER_RESPONSE = False
    seen: list[int] = []
    assert background.after_response(seen.append, 7) is None
    assert seen == [7]
