from __future__ import annotations

import numpy as np
import pytest

from learning.supervised import (
    GradientBoostingDetector,
    TargetEncoder,
    average_precision,
    champion_challenger,
    evaluate,
    time_split,
    training_labels,
)
from scoring.artifacts import ArtifactError, load_model, save_model

NUMERIC = ("a", "b", "c")


def frame(n: int = 3000, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A store whose rows are 40 % fraud; numeric features carry only weak signal."""
    rng = np.random.default_rng(seed)
    store = rng.choice(np.array(["s1", "s2", "s3", "bad"], dtype=object), n, p=[0.4, 0.3, 0.2, 0.1])
    y = np.where(store == "bad", rng.random(n) < 0.4, rng.random(n) < 0.01).astype(int)
    f = {"a": rng.normal(0, 1, n) + 0.3 * y, "b": rng.poisson(2, n).astype(float), "c": rng.random(n),
         "store_id": store, "channel": rng.choice(np.array(["web", "app"], dtype=object), n)}
    f["a"][rng.random(n) < 0.02] = np.nan
    return f, y


def test_exported_trees_match_sklearn() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from learning.supervised import export_hgb, predict_hgb

    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 4))
    x[rng.random((2000, 4)) < 0.05] = np.nan
    y = ((np.nan_to_num(x[:, 0]) + x[:, 1] ** 2 > 1) ^ (rng.random(2000) < 0.1)).astype(int)
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(x, y)
    np.testing.assert_allclose(predict_hgb(export_hgb(model), x), model.predict_proba(x)[:, 1], rtol=0, atol=1e-9)


def test_learns_a_store_pattern_and_round_trips_without_pickle(tmp_path) -> None:
    f, y = frame()
    det = GradientBoostingDetector(NUMERIC, ("store_id", "channel"), max_iter=50).fit(f, y)
    f2, y2 = frame(seed=1)
    p = det.score(f2).values
    assert average_precision(y2, p) > 0.3 > y2.mean() * 3
    assert p[f2["store_id"] == "bad"].mean() > 5 * p[f2["store_id"] != "bad"].mean()
    assert "store" in det.score(f2).reasons(int(np.argmax(p)))[0].text
    meta = save_model(tmp_path / "m", [det], version="t1")
    loaded = load_model(tmp_path / "m", expected_sha256=meta.sha256).detectors[0]
    np.testing.assert_array_equal(loaded.score(f2).values, p)
    # one row scores exactly like inside the batch
    one = {k: v[5:6] for k, v in f2.items()}
    assert loaded.score(one).values[0] == p[5]
    # unseen store and missing column fall back to the overall rate
    odd = {**{k: v[:3] for k, v in f2.items()}, "store_id": np.array(["new", "new", "new"], dtype=object)}
    assert np.all(np.isfinite(loaded.score(odd).values))
    del odd["channel"]
    assert np.all(np.isfinite(loaded.score(odd).values))


def test_corrupted_artifact_is_refused(tmp_path) -> None:
    f, y = frame(800)
    det = GradientBoostingDetector(NUMERIC, ("store_id",), max_iter=5).fit(f, y)
    save_model(tmp_path / "m", [det], version="t1")
    npz = tmp_path / "m.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum"):
        load_model(tmp_path / "m")


def test_needs_both_classes() -> None:
    f, _ = frame(200)
    with pytest.raises(ValueError):
        GradientBoostingDetector(NUMERIC, ()).fit(f, np.zeros(200))


def test_target_encoding_is_out_of_fold() -> None:
    # every category seen once: in-fold encoding would leak the row's own label
    cats = {"k": np.array([f"c{i}" for i in range(1000)], dtype=object)}
    y = (np.random.default_rng(0).random(1000) < 0.5).astype(float)
    enc = TargetEncoder(["k"], smoothing=1.0)
    oof = enc.fit_transform_oof(cats, y)[:, 0]
    assert abs(np.corrcoef(oof, y)[0, 1]) < 0.1
    assert np.corrcoef(enc.transform(cats)[:, 0], y)[0, 1] > 0.9


def test_label_delay_is_respected() -> None:
    day = 86_400.0
    ts = np.array([0, 1, 2, 3, 8, 9], dtype=float) * day
    label = np.array([1, -1, 1, 0, 1, -1])
    known = np.array([7, np.nan, 9, 2.5, 15, np.nan]) * day
    ts_set = training_labels(ts, label, known, cutoff=8.5 * day, maturity_seconds=7 * day)
    # event 0: fraud known at day 7 -> 1; event 1: no label, mature -> legit; event 2: fraud known at
    # day 9 (future) -> mature? 2 <= 1.5 no -> left out; event 3: legit known -> 0; events 4: future
    # label, young -> out; event 5: after the cutoff -> out
    assert ts_set.usable.tolist() == [True, True, False, True, False, False]
    assert ts_set.y.tolist() == [1, 0, 0]
    assert ts_set.n_future_labels_ignored == 2 and ts_set.n_known_fraud == 1
    # with the future label hidden, an old enough event is a presumed legit, as it was believed then
    later = training_labels(ts, label, known, cutoff=9.5 * day, maturity_seconds=2 * day)
    assert later.usable.tolist() == [True, True, True, True, False, False]
    assert later.y.tolist() == [1, 0, 1, 0]  # event 2's chargeback is now known


def test_time_split_and_champion_challenger() -> None:
    ts = np.random.default_rng(0).permutation(100).astype(float)
    train, hold = time_split(ts, 0.2)
    assert ts[hold].min() > ts[train].max() and len(hold) == 20
    y = np.r_[np.ones(10), np.zeros(90)]
    good = evaluate(y, np.r_[np.full(10, 0.9), np.full(90, 0.1)], 0.5)
    bad = evaluate(y, np.random.default_rng(1).random(100), 0.5)
    assert good.average_precision == 1.0 and good.recall == 1.0
    assert champion_challenger(good, bad).promote
    assert not champion_challenger(bad, good).promote
    assert not champion_challenger(evaluate(y[:95] * 0, np.zeros(95), 0.5), good).promote


def test_average_precision_matches_sklearn() -> None:
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(2)
    y = rng.random(500) < 0.1
    s = np.round(rng.random(500) + y * 0.3, 2)  # ties included
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
