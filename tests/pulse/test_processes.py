"""group_stop: a process group is asked to stop, and killed when it will not."""

from __future__ import annotations

import subprocess
import sys
import time

from pulse.lib.processes import group_stop


def _group(code: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its new parent to reap it counts as stopped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_group_that_obeys_sigterm_stops_with_its_children() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; c = subprocess.Popen("
                             "[sys.executable, '-c', 'import time; time.sleep(60)']); print(c.pid, flush=True); "
                             "time.sleep(60)"], start_new_session=True, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    assert _alive(child)
    started = time.monotonic()
    group_stop(proc, timeout=10)
    assert proc.returncode == -15 and time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_a_group_that_ignores_sigterm_is_killed_after_the_timeout() -> None:
    proc = _group("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                  "print('ready', flush=True); time.sleep(60)")
    started = time.monotonic()
    group_stop(proc, timeout=0.5)
    assert proc.returncode == -9 and 0.5 <= time.monotonic() - started < 5


def test_an_ended_process_is_left_alone() -> None:
    proc = _group("print('ready', flush=True)")
    proc.wait()
    group_stop(proc)
    assert proc.returncode == 0
