"""The `learning` section of Tenant.config (validated on save; defaults apply to missing keys).

Thresholds themselves are NOT here: the active thresholds live where the scoring path reads them
(`scoring.consensus.review_threshold` in the tenant config); this section says how the learning
layer may move them, when drift counts, and how models are retrained."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecalibrationSettings(_Section):
    enabled: bool = True
    mode: Literal["precision", "recall"] = "precision"
    target: float = Field(default=0.8, gt=0, le=1)
    # Minimum-label rule: below these, the alert budget applies instead of the labels.
    min_labels: int = Field(default=50, ge=1)
    min_positives: int = Field(default=10, ge=1)
    min_negatives: int = Field(default=10, ge=1)
    min_alerts_labelled: int = Field(default=10, ge=1)
    alerts_per_day: float = Field(default=50.0, gt=0)
    window_days: int = Field(default=28, ge=1, le=365)
    min_threshold: float = Field(default=0.05, ge=0, lt=1)
    max_threshold: float = Field(default=0.95, gt=0, le=1)
    min_change: float = Field(default=0.005, ge=0, lt=1)

    @model_validator(mode="after")
    def _bounds(self) -> RecalibrationSettings:
        if self.min_threshold >= self.max_threshold:
            raise ValueError("min_threshold must be below max_threshold")
        return self


class DriftSettings(_Section):
    enabled: bool = True
    recent_days: int = Field(default=7, ge=1, le=90)
    # Reference window when the active model has no training window of this tenant (version 0):
    # the `reference_days` before the recent window.
    reference_days: int = Field(default=28, ge=1, le=365)
    psi_moderate: float = Field(default=0.1, gt=0)
    psi_major: float = Field(default=0.25, gt=0)
    ks_moderate: float = Field(default=0.1, gt=0, le=1)
    ks_major: float = Field(default=0.2, gt=0, le=1)
    min_rows: int = Field(default=500, ge=50)
    anomaly_level: Literal["moderate", "major"] = "major"
    retrain_on_drift: bool = True

    @model_validator(mode="after")
    def _order(self) -> DriftSettings:
        if self.psi_moderate >= self.psi_major or self.ks_moderate >= self.ks_major:
            raise ValueError("moderate levels must be below major levels")
        return self


class RetrainingSettings(_Section):
    scheduled: bool = True
    training_days: int = Field(default=28, ge=1, le=365)
    min_rows: int = Field(default=2_000, ge=100)
    # The tenant's chargeback delay: unlabelled events younger than this are left out of training
    # and evaluation instead of being taught as legit.
    label_maturity_days: float = Field(default=7.0, ge=0, le=180)
    # Supervised model only with enough known frauds (and legit rows) at the training cutoff.
    supervised_min_positives: int = Field(default=30, ge=5)
    # Consensus weight of the supervised detector, written into the scoring config when a model
    # with one is promoted. Its output is already a calibrated probability of fraud (isotonic/Platt
    # on labels), so halving it like the percentile detectors' default weight would understate it.
    supervised_weight: float = Field(default=1.0, ge=0, le=1)
    holdout_fraction: float = Field(default=0.25, gt=0, lt=0.9)
    min_holdout_positives: int = Field(default=5, ge=1)
    tolerance: float = Field(default=0.01, ge=0, lt=1)
    n_estimators: int = Field(default=100, ge=10, le=1000)
    seed: int = 0


class LearningConfig(_Section):
    recalibration: RecalibrationSettings = Field(default_factory=RecalibrationSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    retraining: RetrainingSettings = Field(default_factory=RetrainingSettings)
    # Scored events kept in the learning log (features, scores) for recalibration, drift and training.
    log_retention_days: int = Field(default=90, ge=7, le=730)


def learning_config(tenant: object) -> LearningConfig:
    from tenants.config import tenant_section

    return tenant_section(tenant, "learning")
