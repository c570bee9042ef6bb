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


def test_gathered_items_of_a_window_are_handed_over_together(settings):  # type: ignore[no-untyped-def]
    settings.PULSE_DEFER_AFTER_RESPONSE = True
    settings.PULSE_HAND_OVER_COALESCE_SECONDS = 0.05
    calls: list[tuple[object, list[int]]] = []
    release = threading.Event()

    def flush(key: object, items: list[int]) -> None:
        calls.append((key, items))

    background.after_response(release.wait, 5)  # the background thread is busy meanwhile
    for item in (1, 2, 3):
        background.after_response_gathered(flush, "a", item)
    background.after_response_gathered(flush, "b", 9)
    assert calls == []
    release.set()
    import time

    time.sleep(0.3)
    done = background.after_response(lambda: None)
    assert done is not None
    done.result(timeout=5)
    assert sorted(calls) == [("a", [1, 2, 3]), ("b", [9])]  # each key's items together, in order
    background.after_response_gathered(flush, "a", 4)  # a new window
    time.sleep(0.3)
    done = background.after_response(lambda: None)
    assert done is not None
    done.result(timeout=5)
    assert calls[-1] == ("a", [4])


def test_gathered_items_go_at_once_when_deferring_is_off(settings):  # type: ignore[no-untyped-def]
    settings.PULSE_DEFER_AFTER_RESPONSE = False
    calls: list[tuple[object, list[int]]] = []
    background.after_response_gathered(lambda key, items: calls.append((key, items)), "k", 5)
    assert calls == [("k", [5])]
