"""The scored-event log format: which feature values are kept per scored transaction (in order) and
which context columns, and how stored rows become a detector frame again. Pure (no Django)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from learning.supervised import DEFAULT_CATEGORICAL, DEFAULT_NUMERIC
from scoring.features import DETECTOR_FEATURES

# Every numeric input of the unsupervised detectors and of the supervised model.
LOG_FEATURES: tuple[str, ...] = tuple(dict.fromkeys((*DETECTOR_FEATURES, *DEFAULT_NUMERIC)))
# Context kept as strings: the event's store is not part of the enrichment's contract but is what a
# compromised-merchant pattern is about.
CONTEXT_COLUMNS: tuple[str, ...] = DEFAULT_CATEGORICAL


def feature_rows(frame: Mapping[str, Any], n: int) -> np.ndarray:
    """(n, len(LOG_FEATURES)) float matrix of a scoring frame; missing columns are 0."""
    cols = [np.asarray(frame[f], dtype=np.float64) if f in frame else np.zeros(n) for f in LOG_FEATURES]
    x = np.column_stack(cols) if cols else np.zeros((n, 0))
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def context_json(events: Sequence[Mapping[str, Any]], frame: Mapping[str, Any]) -> list[str]:
    """The context of each row as JSON text (what json.dumps writes), from the frame when it has the
    column (as normalised by the enrichment), else from the stored event. Context values repeat
    (a few stores, channels, methods, countries): each distinct combination is encoded once."""
    n = len(events)
    cols = [["" if v is None else str(v) for v in (frame[c] if c in frame else [e.get(c) for e in events])]
            for c in CONTEXT_COLUMNS]
    seen: dict[tuple[str, ...], str] = {}
    out: list[str] = []
    for key in zip(*cols, strict=True) if cols else [()] * n:
        text = seen.get(key)
        if text is None:
            text = seen[key] = json.dumps(dict(zip(CONTEXT_COLUMNS, key, strict=True)))
        out.append(text)
    return out


def frame_from_log(features: Sequence[Sequence[float]], contexts: Sequence[Mapping[str, str]],
                   names: Sequence[str] = LOG_FEATURES) -> dict[str, np.ndarray]:
    """Rebuild a detector frame from stored rows (numeric features + context columns)."""
    x = np.asarray(features, dtype=np.float64).reshape(len(contexts), len(names)) if len(contexts) else \
        np.zeros((0, len(names)))
    frame: dict[str, np.ndarray] = {name: x[:, j] for j, name in enumerate(names)}
    for c in CONTEXT_COLUMNS:
        frame[c] = np.array([ctx.get(c, "") for ctx in contexts], dtype=object)
    return frame
