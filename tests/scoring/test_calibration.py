from __future__ import annotations

import json

import numpy as np
import pytest

from scoring.calibration import (
    IsotonicCalibrator,
    PercentileCalibrator,
    PlattCalibrator,
    calibrator_from_dict,
    fit_calibrator,
)


def test_two_detectors_with_different_scales_flag_the_same_fraction():
    rng = np.random.default_rng(0)
    signal = rng.standard_t(3, size=20_000)
    raw_a = signal + rng.normal(0, 0.3, signal.size)  # unbounded, z-like
    raw_b = 1 / (1 + np.exp(-(0.2 * signal + rng.normal(0, 0.1, signal.size))))  # squeezed into 0..1
    ref, live = slice(0, 10_000), slice(10_000, None)
    cal_a = PercentileCalibrator.fit(raw_a[ref])
    cal_b = PercentileCalibrator.fit(raw_b[ref])
    for thr in (0.9, 0.99):
        assert np.mean(raw_a[live] > thr) != pytest.approx(np.mean(raw_b[live] > thr), abs=0.05)  # raw: not comparable
        frac_a = np.mean(cal_a.transform(raw_a[live]) >= thr)
        frac_b = np.mean(cal_b.transform(raw_b[live]) >= thr)
        assert frac_a == pytest.approx(1 - thr, abs=0.006)
        assert frac_b == pytest.approx(1 - thr, abs=0.006)


def test_percentile_sketch_ties_bounds_and_json():
    raw = np.r_[np.zeros(900), np.linspace(1, 10, 100)]
    cal = PercentileCalibrator.fit(raw)
    out = cal.transform(np.array([-1.0, 0.0, 10.0, 99.0, np.nan]))
    assert out[0] == 0.0 and out[3] == 1.0 and out[4] == 0.0
    assert out[1] == pytest.approx(0.45, abs=0.01)  # mid-rank of the tied block, not its top
    assert out[2] == pytest.approx(1.0)
    assert np.all(np.diff(cal.transform(np.linspace(-1, 11, 200))) >= 0)  # monotone
    d = json.loads(json.dumps(cal.to_dict()))
    assert len(d["quantiles"]) == 1001
    back = calibrator_from_dict(d)
    np.testing.assert_allclose(back.transform(np.linspace(0, 10, 50)), cal.transform(np.linspace(0, 10, 50)),
                               atol=1e-4)
    with pytest.raises(ValueError):
        PercentileCalibrator.fit(np.array([np.nan]))


def test_label_calibrators_are_monotone_probabilities():
    rng = np.random.default_rng(1)
    raw = rng.normal(size=2000)
    y = rng.random(2000) < 1 / (1 + np.exp(-3 * (raw - 1)))
    iso = fit_calibrator(raw, y)
    assert isinstance(iso, IsotonicCalibrator)
    p = iso.transform(np.array([-2.0, 1.0, 3.0]))
    assert p[0] < 0.05 and 0.3 < p[1] < 0.7 and p[2] > 0.9
    platt = fit_calibrator(raw[:100], y[:100])
    assert isinstance(platt, PlattCalibrator) and platt.a > 0
    assert isinstance(fit_calibrator(raw, None), PercentileCalibrator)
    for c in (iso, platt):
        again = calibrator_from_dict(json.loads(json.dumps(c.to_dict())))
        np.testing.assert_allclose(again.transform(raw[:20]), c.transform(raw[:20]))
    with pytest.raises(ValueError):
        calibrator_from_dict({"kind": "pickle"})
