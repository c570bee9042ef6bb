"""Model artifacts without pickle: `<name>.npz` (arrays) + `<name>.json` (metadata, checksum).

A model here is a list of fitted detectors (each exports `to_state() -> (arrays, params)` and
is rebuilt by `from_state` of the class registered under its kind) plus JSON-serialisable
extras (e.g. the calibration sketches of the cold-start model).

- The npz is written deterministically (sorted members, fixed zip timestamps, no compression), so
  the same fitted model always has the same sha256: the checksum detects corruption AND shows
  that a retraining with the same seed reproduced the model.
- `load_model` verifies the checksum before parsing anything and loads with
  `allow_pickle=False`: a corrupted or tampered file is refused, and no object array can run code.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from scoring.detectors import DETECTOR_CLASSES, Detector

FORMAT_VERSION = 1
# Bump when the meaning of stored arrays or the scoring maths changes: loaders refuse mismatches.
CODE_VERSION = "scoring-detectors/1"


class ArtifactError(Exception):
    """The artifact is missing, corrupted, from an unknown format, or unsafe to load."""


@dataclass(frozen=True, slots=True)
class ArtifactMeta:
    version: str
    features: list[str]
    training_window: dict[str, str | None]
    code_version: str
    sha256: str
    detectors: list[dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    format: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format, "version": self.version, "features": self.features,
            "training_window": self.training_window, "code_version": self.code_version,
            "sha256": self.sha256, "detectors": self.detectors, "extra": self.extra,
            "created_at": self.created_at,
        }


@dataclass(slots=True)
class LoadedModel:
    detectors: list[Detector]
    meta: ArtifactMeta


def _paths(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    base = p.with_suffix("") if p.suffix in (".npz", ".json") else p
    return base.with_name(base.name + ".npz"), base.with_name(base.name + ".json")


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            arr = np.asarray(arrays[name]).copy(order="C")  # ascontiguousarray would make 0-d arrays 1-d
            if arr.dtype.hasobject:
                raise ArtifactError(f"array {name!r} has dtype object: refusing to store it")
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, arr, allow_pickle=False)
    return buf.getvalue()


def save_model(
    path: str | Path,
    detectors: list[Detector],
    *,
    version: str,
    training_window: tuple[str | None, str | None] = (None, None),
    extra: dict[str, Any] | None = None,
    code_version: str = CODE_VERSION,
) -> ArtifactMeta:
    """Write `<path>.npz` and `<path>.json`; returns the metadata (with the checksum)."""
    arrays: dict[str, np.ndarray] = {}
    described = []
    features: list[str] = []
    for i, det in enumerate(detectors):
        if det.name not in DETECTOR_CLASSES:
            raise ArtifactError(f"detector kind {det.name!r} is not registered")
        det_arrays, params = det.to_state()
        for key, arr in det_arrays.items():
            arrays[f"d{i}__{key}"] = np.asarray(arr)
        described.append({"kind": det.name, "params": params, "arrays": sorted(det_arrays)})
        features += [f for f in det.features if f not in features]
    payload = _npz_bytes(arrays)
    meta = ArtifactMeta(
        version=version, features=features,
        training_window={"from": training_window[0], "to": training_window[1]},
        code_version=code_version, sha256=hashlib.sha256(payload).hexdigest(), detectors=described,
        extra=extra or {}, created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    npz_path, json_path = _paths(path)
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    npz_path.write_bytes(payload)
    json_path.write_text(json.dumps(meta.to_json(), indent=2, sort_keys=True), encoding="utf-8")
    return meta


def load_model(path: str | Path, *, expected_sha256: str | None = None) -> LoadedModel:
    """Load and verify a model. `expected_sha256` (e.g. from the model registry row) is checked too."""
    npz_path, json_path = _paths(path)
    try:
        raw_meta = json.loads(json_path.read_text(encoding="utf-8"))
        payload = npz_path.read_bytes()
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read artifact {npz_path.stem}: {exc}") from exc
    if raw_meta.get("format") != FORMAT_VERSION:
        raise ArtifactError(f"unsupported artifact format {raw_meta.get('format')!r}")
    if raw_meta.get("code_version") != CODE_VERSION:
        raise ArtifactError(f"artifact built by {raw_meta.get('code_version')!r}, this code is {CODE_VERSION!r}")
    digest = hashlib.sha256(payload).hexdigest()
    for want in (raw_meta.get("sha256"), expected_sha256):
        if want is not None and digest != want:
            raise ArtifactError(f"checksum mismatch for {npz_path.name}: file {digest[:12]}…, expected {want[:12]}…")
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"corrupted arrays in {npz_path.name}: {exc}") from exc
    detectors: list[Detector] = []
    for i, desc in enumerate(raw_meta["detectors"]):
        cls = DETECTOR_CLASSES.get(desc["kind"])
        if cls is None:
            raise ArtifactError(f"unknown detector kind {desc['kind']!r}")
        prefix = f"d{i}__"
        det_arrays = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        missing = set(desc["arrays"]) - set(det_arrays)
        if missing:
            raise ArtifactError(f"detector {i} ({desc['kind']}) misses arrays {sorted(missing)}")
        detectors.append(cls.from_state(det_arrays, desc["params"]))
    meta = ArtifactMeta(**{k: raw_meta[k] for k in (
        "version", "features", "training_window", "code_version", "sha256", "detectors", "extra",
        "created_at", "format")})
    return LoadedModel(detectors=detectors, meta=meta)
