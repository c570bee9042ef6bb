from __future__ import annotations

from scoring.kpi.consensus import ConsensusConfig
from scoring.kpi.noise import NoiseConfig
from scoring.kpi.pipeline import KpiConfig, detect
from tests.scoring.kpi.helpers import hourly, seasonal_counts


def test_pipeline_reports_outage_once_with_first_bucket():
    n = 24 * 30
    v = seasonal_counts(n, seed=11, weekend=0.7)
    v[-20:-16] = 0
    t = hourly(n)
    cfg = KpiConfig(kind="count", detectors=("seasonal_z", "iforest"),
                    noise=NoiseConfig(direction="down", min_duration=2))
    result, incidents = detect(t, v, cfg, start=t[-72])
    assert len(incidents) == 1
    inc = incidents[0]
    assert inc.occurred_at == t[-20] and inc.detected_at == t[-19] and inc.direction == -1
    assert result.severity[n - 20] == "critical"
    assert set(result.detector_scores(n - 20)) == {"seasonal_z", "iforest"}
    # spikes only: the same outage is not reported
    up = KpiConfig(kind="count", detectors=("seasonal_z", "iforest"), consensus=ConsensusConfig(mode="all"),
                   noise=NoiseConfig(direction="up"))
    assert detect(t, v, up, start=t[-72])[1] == []
