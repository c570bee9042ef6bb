"""The cold-start ("global") model: detectors fitted on a reference feature frame, plus the
percentile sketches of their raw scores on that frame, saved as one versioned artifact."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scoring.artifacts import ArtifactMeta, load_model, save_model
from scoring.calibration import Calibrator, PercentileCalibrator, calibrator_from_dict
from scoring.detectors.base import Detector, Frame
from scoring.detectors.iforest import IsolationForestDetector
from scoring.detectors.statistical import IQRDetector, RobustZDetector
from scoring.features import DETECTOR_FEATURES


@dataclass(slots=True)
class TrainedModel:
    detectors: list[Detector]
    calibrators: dict[str, Calibrator]
    meta: ArtifactMeta | None = None

    def save(self, path: str | Path, *, version: str,
             training_window: tuple[str | None, str | None] = (None, None)) -> ArtifactMeta:
        self.meta = save_model(path, self.detectors, version=version, training_window=training_window,
                               extra={"calibrators": {k: c.to_dict() for k, c in self.calibrators.items()}})
        return self.meta


def train_global_model(frame: Frame, seed: int = 0, *, n_estimators: int = 100,
                       features: tuple[str, ...] = DETECTOR_FEATURES) -> TrainedModel:
    """Fit robust z, IQR and Isolation Forest on `frame`; same frame + same seed -> same model
    (same artifact checksum)."""
    detectors: list[Detector] = [
        RobustZDetector(features).fit(frame),
        IQRDetector(features).fit(frame),
        IsolationForestDetector(features, n_estimators=n_estimators, seed=seed).fit(frame),
    ]
    calibrators: dict[str, Calibrator] = {
        d.name: PercentileCalibrator.fit(d.score(frame).raw) for d in detectors
    }
    return TrainedModel(detectors, calibrators)


def load_trained_model(path: str | Path, *, expected_sha256: str | None = None) -> TrainedModel:
    loaded = load_model(path, expected_sha256=expected_sha256)
    cals = {k: calibrator_from_dict(v) for k, v in loaded.meta.extra.get("calibrators", {}).items()}
    return TrainedModel(loaded.detectors, cals, loaded.meta)
