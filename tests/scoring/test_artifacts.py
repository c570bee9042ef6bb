from __future__ import annotations

import json

import numpy as np
import pytest

from scoring.artifacts import ArtifactError, load_model, save_model
from scoring.detectors import RobustZDetector
from scoring.detectors.training import load_trained_model, train_global_model
from scoring.features import DETECTOR_FEATURES


def synthetic_features(n: int, seed: int) -> dict[str, np.ndarray]:
    """A feature frame without Redis: counts near 1, z-scores near 0, a few odd rows."""
    rng = np.random.default_rng(seed)
    fr = {f: rng.poisson(1.0, n).astype(float) for f in DETECTOR_FEATURES}
    fr["amount_robust_z"] = rng.normal(size=n)
    for flag in ("new_device", "new_ip", "new_country", "is_new_customer"):
        fr[flag] = (rng.random(n) < 0.05).astype(float)
    return fr


@pytest.fixture(scope="module")
def trained():
    return train_global_model(synthetic_features(800, seed=1), seed=42, n_estimators=30)


def test_round_trip_gives_the_same_scores(tmp_path, trained):
    meta = trained.save(tmp_path / "global", version="g-1", training_window=("2024-01-01", "2024-02-01"))
    back = load_trained_model(tmp_path / "global", expected_sha256=meta.sha256)
    probe = synthetic_features(50, seed=2)
    for a, b in zip(trained.detectors, back.detectors, strict=True):
        np.testing.assert_array_equal(a.score(probe).raw, b.score(probe).raw)
    for name, cal in trained.calibrators.items():
        np.testing.assert_allclose(back.calibrators[name].transform(np.linspace(0, 1, 9)),
                                   cal.transform(np.linspace(0, 1, 9)), atol=1e-3)
    stored = json.loads((tmp_path / "global.json").read_text())
    assert stored["version"] == "g-1" and stored["sha256"] == meta.sha256
    assert stored["training_window"] == {"from": "2024-01-01", "to": "2024-02-01"}
    assert stored["features"] == list(DETECTOR_FEATURES) and stored["code_version"]


def test_training_is_reproducible_with_a_fixed_seed(tmp_path, trained):
    same = train_global_model(synthetic_features(800, seed=1), seed=42, n_estimators=30)
    other = train_global_model(synthetic_features(800, seed=1), seed=43, n_estimators=30)
    a = trained.save(tmp_path / "a", version="v").sha256
    assert same.save(tmp_path / "b", version="v").sha256 == a
    assert other.save(tmp_path / "c", version="v").sha256 != a


def test_corrupted_or_tampered_artifacts_are_refused(tmp_path, trained):
    trained.save(tmp_path / "m", version="v")
    npz = tmp_path / "m.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum"):
        load_model(tmp_path / "m")
    trained.save(tmp_path / "n", version="v")
    with pytest.raises(ArtifactError, match="checksum"):
        load_model(tmp_path / "n", expected_sha256="0" * 64)  # registry says otherwise
    with pytest.raises(ArtifactError):
        load_model(tmp_path / "missing")
    meta = json.loads((tmp_path / "n.json").read_text())
    meta["detectors"][0]["kind"] = "os.system"
    (tmp_path / "n.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="unknown detector kind"):
        load_model(tmp_path / "n")


def test_object_arrays_are_never_written(tmp_path):
    det = RobustZDetector(features=("cust_count_1h",)).fit({"cust_count_1h": np.arange(5.0)})
    det._fitted["median"] = np.array([object()], dtype=object)
    with pytest.raises(ArtifactError, match="object"):
        save_model(tmp_path / "x", [det], version="v")
