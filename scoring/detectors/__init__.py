"""Transaction detectors behind one protocol: `fit(frame) -> self`, `score(frame) -> Scores`."""

from __future__ import annotations

from typing import Any

from scoring.detectors.base import Detector, Frame, Reason, Scores, matrix
from scoring.detectors.iforest import IsolationForestDetector
from scoring.detectors.statistical import IQRDetector, RobustZDetector

# Kind name -> class: artifacts store the kind, never a pickled object.
DETECTOR_CLASSES: dict[str, Any] = {
    RobustZDetector.name: RobustZDetector,
    IQRDetector.name: IQRDetector,
    IsolationForestDetector.name: IsolationForestDetector,
}

__all__ = [
    "DETECTOR_CLASSES",
    "Detector",
    "Frame",
    "IQRDetector",
    "IsolationForestDetector",
    "Reason",
    "RobustZDetector",
    "Scores",
    "matrix",
]
