"""Event files (NDJSON or CSV, optionally gzip) and the labels JSON.

Writers stream: they take any iterable of event dicts and never hold more than one
batch. Output is byte-stable (sorted JSON keys where order is free, gzip mtime 0,
no file name in the gzip header) so two runs can be compared with `cmp`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Literal

from simulator.events import FIELDS
from simulator.labels import EventLabel, Label, LabelSet

Format = Literal["ndjson", "csv"]
_INT_FIELDS = ("quantity", "stock_level", "threshold")


def _open_write(path: Path) -> IO[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        raw = path.open("wb")
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
        return _ClosingText(gz, raw)
    return path.open("w", encoding="utf-8", newline="")


class _ClosingText(io.TextIOWrapper):
    """Text wrapper over a GzipFile that also closes the underlying file."""

    def __init__(self, gz: gzip.GzipFile, raw: IO[bytes]) -> None:
        super().__init__(gz, encoding="utf-8", newline="")
        self._raw = raw

    def close(self) -> None:
        super().close()
        self._raw.close()


def _open_read(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def detect_format(path: str | Path) -> Format:
    suffixes = Path(path).suffixes
    return "csv" if ".csv" in suffixes else "ndjson"


def event_filename(fmt: Format, compress: bool) -> str:
    return f"events.{fmt}" + (".gz" if compress else "")


def write_events(events: Iterable[dict[str, Any]], path: str | Path, fmt: Format | None = None) -> int:
    """Write events; gzip when the path ends in .gz. Returns the number written."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    n = 0
    with _open_write(path) as fh:
        if fmt == "ndjson":
            for ev in events:
                fh.write(json.dumps(ev, separators=(",", ":"), ensure_ascii=False))
                fh.write("\n")
                n += 1
        elif fmt == "csv":
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(FIELDS)
            for ev in events:
                writer.writerow([_csv_cell(ev.get(f)) for f in FIELDS])
                n += 1
        else:
            raise ValueError(f"unknown format {fmt!r}")
    return n


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return value


def read_events(path: str | Path, fmt: Format | None = None) -> Iterator[dict[str, Any]]:
    """Stream events back as dicts (CSV cells parsed back to ints and objects)."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    with _open_read(path) as fh:
        if fmt == "ndjson":
            for line in fh:
                if line.strip():
                    yield json.loads(line)
        else:
            for row in csv.DictReader(fh):
                ev: dict[str, Any] = {}
                for k in FIELDS:
                    v = row.get(k, "")
                    if v == "":
                        continue
                    if k in _INT_FIELDS:
                        ev[k] = int(v)
                    elif k == "value":
                        ev[k] = float(v)
                    elif k == "attributes":
                        ev[k] = json.loads(v)
                    else:
                        ev[k] = v
                yield ev


def labels_to_dict(ls: LabelSet) -> dict[str, Any]:
    return {
        "meta": ls.meta,
        "labels": [lab.to_dict() for lab in ls.labels],
        "event_labels": [e.to_dict() for e in ls.event_labels],
        "truth": dict(sorted(ls.truth.items())),
    }


def write_labels(ls: LabelSet, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        json.dump(labels_to_dict(ls), fh, indent=1, ensure_ascii=False)
        fh.write("\n")


def read_labels(path: str | Path) -> LabelSet:
    with Path(path).open(encoding="utf-8") as fh:
        d = json.load(fh)
    return LabelSet(labels=[Label.from_dict(x) for x in d.get("labels", [])],
                    event_labels=[EventLabel.from_dict(x) for x in d.get("event_labels", [])],
                    truth=dict(d.get("truth", {})), meta=dict(d.get("meta", {})))


def write_scenario(scenario: Any, out_dir: str | Path, fmt: Format = "ndjson",
                   compress: bool = False) -> dict[str, Path]:
    """Write `events.<fmt>[.gz]` and `labels.json` into out_dir; returns their paths."""
    out = Path(out_dir)
    events_path = out / event_filename(fmt, compress)
    write_events(scenario.events, events_path, fmt)
    labels_path = out / "labels.json"
    write_labels(scenario.label_set(), labels_path)
    return {"events": events_path, "labels": labels_path}
