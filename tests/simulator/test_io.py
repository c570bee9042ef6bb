from __future__ import annotations

import gzip

import pytest

from simulator.io import read_events, read_labels, write_events, write_labels, write_scenario
from tests.simulator._scenarios import small, small_events


@pytest.mark.parametrize("name", ["events.ndjson", "events.ndjson.gz", "events.csv", "events.csv.gz"])
def test_events_round_trip(tmp_path, name) -> None:
    evs = small_events()[:3000] + tuple(e for e in small_events() if e["type"] in ("order", "payment", "stock"))
    path = tmp_path / name
    assert write_events(evs, path) == len(evs)
    assert list(read_events(path)) == list(evs)
    if name.endswith(".gz"):
        with gzip.open(path, "rb") as fh:
            assert fh.read(1)


def test_writer_streams_from_a_generator(tmp_path) -> None:
    def gen():
        yield from small().events

    n = write_events(gen(), tmp_path / "e.ndjson")
    assert n == len(small().events)


def test_labels_round_trip(tmp_path) -> None:
    ls = small().label_set()
    write_labels(ls, tmp_path / "labels.json")
    back = read_labels(tmp_path / "labels.json")
    assert back.labels == ls.labels
    assert back.event_labels == ls.event_labels
    assert back.truth == ls.truth
    assert back.meta["scenario"] == "small" and back.meta["events"] == len(small().events)


def test_write_scenario_paths(tmp_path) -> None:
    paths = write_scenario(small(), tmp_path / "out", fmt="csv", compress=True)
    assert paths["events"].name == "events.csv.gz" and paths["labels"].name == "labels.json"
    assert sum(1 for _ in read_events(paths["events"])) == len(small().events)
