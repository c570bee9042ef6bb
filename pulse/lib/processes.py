"""Stopping a subprocess started with `start_new_session=True` (servers, workers, the whole platform)
together with everything it started."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any


def group_stop(proc: subprocess.Popen[Any], timeout: float = 15) -> None:
    """SIGTERM the process group, wait up to `timeout` seconds, then SIGKILL it. No-op if it ended."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:  # ended between the poll and the signal
        proc.wait()
