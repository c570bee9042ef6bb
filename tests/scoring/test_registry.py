"""Model registry: reproducible global model, checksum verification, register/promote/rollback,
per-tenant calibration replacing the global defaults once there is enough data."""

from __future__ import annotations

import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from scoring import registry
from scoring.artifacts import ArtifactError
from scoring.enrich import tenant_prefix
from scoring.models import CalibrationState, ModelVersion
from scoring.pipeline import RESERVOIR_KEY, calibration_fit, scorer_for, tenant_key


def test_training_twice_with_the_same_seed_gives_the_same_checksum(tmp_path, redis_client):
    kwargs = {"seed": 3, "scenario": "small", "n_estimators": 10}
    first = registry.global_model_train(out=tmp_path / "a", **kwargs)
    second = registry.global_model_train(out=tmp_path / "b", **kwargs)
    other = registry.global_model_train(out=tmp_path / "c", **{**kwargs, "seed": 4})
    assert first["sha256"] == second["sha256"] != other["sha256"]
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert not list(redis_client.scan_iter(match="pulse:{train.*"))  # throwaway state removed


def test_the_committed_global_model_is_what_its_training_command_makes(tmp_path, redis_client):
    """The artifact in the repository is reproducible: `manage.py train_global_model` with its
    defaults, on today's enrichment and detector code, writes the same arrays. A change to the
    features or the detectors that moves the model fails here until the model is retrained and
    committed (run the command without --out)."""
    import io
    import json

    from django.core.management import call_command

    call_command("train_global_model", out=str(tmp_path / "g"), stdout=io.StringIO())
    made = json.loads((tmp_path / "g.json").read_text())
    assert made["sha256"] == registry.global_meta()["sha256"]


def test_the_committed_global_model_loads_and_a_corrupted_copy_is_refused(tmp_path):
    meta = registry.global_meta()
    model = registry.load_model(registry.GLOBAL_STORE / registry.GLOBAL_NAME, meta["sha256"])
    assert {d.name for d in model.detectors} == {"robust_z", "iqr", "isolation_forest"}
    for suffix in (".npz", ".json"):
        shutil.copy(registry.GLOBAL_STORE / f"{registry.GLOBAL_NAME}{suffix}", tmp_path / f"g{suffix}")
    data = bytearray((tmp_path / "g.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "g.npz").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum"):
        registry.load_model(tmp_path / "g", meta["sha256"])
    with pytest.raises(ArtifactError, match="checksum"):  # the registry row's sha256 is checked too
        registry.load_model(registry.GLOBAL_STORE / registry.GLOBAL_NAME, "0" * 64)


def test_every_tenant_starts_on_version_0_then_promotes_and_rolls_back(tenant_a, redis_client):
    v0 = registry.active_version()
    assert (v0.version, v0.kind, v0.status) == (0, "global", "active")
    assert scorer_for(tenant_a.tenant).model_version == 0

    target = Path(settings.MEDIA_ROOT) / "models" / tenant_a.schema
    target.mkdir(parents=True, exist_ok=True)
    try:
        for suffix in (".npz", ".json"):
            shutil.copy(registry.GLOBAL_STORE / f"{registry.GLOBAL_NAME}{suffix}", target / f"v1{suffix}")
        candidate = registry.model_register(artifact_path=f"models/{tenant_a.schema}/v1", metrics={"auc": 0.9})
        assert (candidate.version, candidate.status, candidate.kind) == (1, "candidate", "tenant")
        assert scorer_for(tenant_a.tenant).model_version == 0  # a candidate does not score
        registry.model_promote(version=1)
        assert scorer_for(tenant_a.tenant).model_version == 1
        assert ModelVersion.objects.get(version=0).status == "retired"
        assert registry.model_rollback().version == 0
        assert scorer_for(tenant_a.tenant).model_version == 0
        # A corrupted artifact cannot be registered.
        data = bytearray((target / "v1.npz").read_bytes())
        data[100] ^= 0xFF
        (target / "v1.npz").write_bytes(bytes(data))
        with pytest.raises(registry.RegistryError):
            registry.model_register(artifact_path=f"models/{tenant_a.schema}/v1")
        with pytest.raises(registry.RegistryError):
            registry.model_promote(version=99)
    finally:
        shutil.rmtree(target, ignore_errors=True)


def test_a_shipped_global_model_replaces_version_0_and_what_was_fitted_on_the_old_one(
        tenant_a, redis_client, django_capture_on_commit_callbacks):
    """An upgrade ships a retrained global model: tenants registered version 0 with the old checksum.
    Scoring must go on with the new model (not refuse it: every check would fail), and the tenant's
    calibration of version 0 and its reservoirs of old raw scores go; a tenant model's stay."""
    from scoring import pipeline

    tenant = tenant_a.tenant
    old = "ab" * 32
    v0 = registry.active_version()
    ModelVersion.objects.filter(pk=v0.pk).update(sha256=old)  # as an earlier deployment registered it
    from scoring.calibration import PercentileCalibrator

    fitted = PercentileCalibrator.fit(np.linspace(0.0, 50.0, 1000)).to_dict()  # on the old model's raw scores
    CalibrationState.objects.create(model_version=0, detector="robust_z", calibrator=fitted, n_reference=5000)
    CalibrationState.objects.create(model_version=3, detector="robust_z", calibrator=fitted, n_reference=5000)
    prefix = tenant_prefix(tenant_key(tenant))
    redis_client.rpush(prefix + RESERVOIR_KEY.format(version=0, detector="iqr"), struct.pack("<d", 1.0))
    redis_client.rpush(prefix + RESERVOIR_KEY.format(version=3, detector="iqr"), struct.pack("<d", 1.0))
    pipeline.revisions_forget()
    with django_capture_on_commit_callbacks(execute=True):
        scorer = scorer_for(tenant)
    assert scorer.model_version == 0
    assert scorer.engine.calibrators["robust_z"].to_dict() != fitted  # the new model's own calibration
    row = ModelVersion.objects.get(version=0)
    assert row.sha256 == registry.global_meta()["sha256"] and "replaced abababababab" in row.notes
    assert not CalibrationState.objects.filter(model_version=0).exists()
    assert CalibrationState.objects.filter(model_version=3).exists()
    assert not redis_client.exists(prefix + RESERVOIR_KEY.format(version=0, detector="iqr"))
    assert redis_client.exists(prefix + RESERVOIR_KEY.format(version=3, detector="iqr"))
    body = tenant_a.client("ingest").post("/api/v1/fraud-check", {"amount": "12", "customer_id": "after-upgrade"},
                                          format="json")
    assert body.status_code == 200, body.content


def test_tenant_calibration_replaces_the_global_defaults_once_there_is_enough_data(tenant_a, redis_client):
    tenant = tenant_a.tenant
    tenant.config = {"scoring": {"calibration": {"min_scores": 1000}}}
    tenant.save(update_fields=["config"])
    before = scorer_for(tenant)
    prefix = tenant_prefix(tenant_key(tenant))
    rng = np.random.default_rng(0)
    # Too few scores: nothing is fitted.
    key = prefix + RESERVOIR_KEY.format(version=0, detector="robust_z")
    redis_client.rpush(key, *[struct.pack("<d", v) for v in rng.normal(1.0, 0.2, 500)])
    assert calibration_fit(tenant=tenant) == {}
    # Enough for robust_z (on a very different scale from the global reference): fitted and used.
    redis_client.rpush(key, *[struct.pack("<d", v) for v in rng.normal(1.0, 0.2, 1500)])
    assert calibration_fit(tenant=tenant) == {"robust_z": 2000}
    state = CalibrationState.objects.get(model_version=0, detector="robust_z")
    after = scorer_for(tenant)
    assert after is not before
    assert after.engine.calibrators["robust_z"].to_dict() == state.calibrator
    assert after.engine.calibrators["iqr"] is before.engine.calibrators["iqr"]  # still the global default
    # Percentiles now read against this tenant: its median raw score maps to about 0.5.
    assert abs(float(after.engine.calibrators["robust_z"].transform(np.array([1.0]))[0]) - 0.5) < 0.05


def test_a_process_trusts_the_revisions_it_read_for_a_moment(tenant_a, redis_client, settings, monkeypatch,
                                                             django_assert_num_queries):
    """PULSE_SCORER_REVISION_SECONDS: within it, scoring asks nothing of the database; a rule edit made
    in another process is picked up once it runs out, one in this process at once."""
    from scoring import pipeline
    from scoring.models import Rule
    from scoring.services import rule_update, rules_ensure_defaults

    settings.PULSE_SCORER_REVISION_SECONDS = 60.0
    monkeypatch.setattr(pipeline, "_revisions_seen", {})
    rules_ensure_defaults(tenant=tenant_a.tenant)
    before = scorer_for(tenant_a.tenant)
    with django_assert_num_queries(0):
        assert scorer_for(tenant_a.tenant) is before
    rule = Rule.objects.filter(enabled=True).order_by("pk").first()
    assert rule is not None
    rule_update(rule=rule, changes={"enabled": False})
    after = scorer_for(tenant_a.tenant)  # this process's own edit is seen at once
    assert after is not before and after.key.rules_revision > before.key.rules_revision
    # Another process's edit (a new rule version row written without this process's signals) is
    # seen once the revisions it read expire.
    from scoring.models import RuleVersion

    with django_assert_num_queries(0):
        assert scorer_for(tenant_a.tenant) is after
    latest = RuleVersion.objects.order_by("-pk").first()
    assert latest is not None
    RuleVersion.objects.bulk_create([RuleVersion(**{f.attname: getattr(latest, f.attname)
                                                    for f in RuleVersion._meta.concrete_fields if not f.primary_key})])
    assert scorer_for(tenant_a.tenant) is after  # still trusted
    now = time.monotonic()
    monkeypatch.setattr(pipeline.time, "monotonic", lambda: now + 61)
    assert scorer_for(tenant_a.tenant).key.rules_revision > after.key.rules_revision
