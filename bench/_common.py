"""Shared by the benchmark scripts: every script prints one JSON line and, with --record, appends it to
BENCHMARKS.md with the machine, the date and the command that produced it."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_HEADER = "## Raw results (appended by bench scripts)"


def machine() -> str:
    return f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"


def emit(name: str, result: dict[str, Any]) -> None:
    """Print the JSON line; append it to BENCHMARKS.md when the command line has --record."""
    line = {"bench": name, **result}
    print(json.dumps(line, default=str), flush=True)
    if "--record" in sys.argv:
        path = ROOT / "BENCHMARKS.md"
        text = path.read_text() if path.exists() else "# Benchmarks\n"
        if RESULTS_HEADER not in text:
            text += f"\n{RESULTS_HEADER}\n"
        command = " ".join(["python", *sys.argv]).replace(" --record", "")
        text += (f"\n- {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}, `{command}`:\n"
                 f"  `{json.dumps(line, default=str)}`\n")
        path.write_text(text)
