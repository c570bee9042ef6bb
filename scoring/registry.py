"""The model registry: the ONE place where transaction models are registered, loaded, promoted and
rolled back (the learning layer trains tenant models and goes through these functions).

- Version 0 is the global cold-start model, trained by `manage.py train_global_model --seed 42` and
  committed in scoring/artifacts_store/. Every tenant gets a version-0 row on first use and scores
  with it until one of its own models is promoted.
- A tenant model is registered as a `candidate` (its artifact is verified first), then promoted:
  the previous active row becomes `retired`. Rollback promotes the most recently retired one.
- Loading verifies the artifact's sha256 against the registry row (and the artifact's own meta),
  never unpickles anything, and is cached per process by (path, sha256): a worker loads a model
  once, however many batches or fraud-checks it scores.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from scoring.artifacts import CODE_VERSION, ArtifactError
from scoring.detectors.training import TrainedModel, load_trained_model

from .models import ModelVersion

GLOBAL_STORE = Path(__file__).resolve().parent / "artifacts_store"
GLOBAL_NAME = "global-v0"
GLOBAL_VERSION = 0

_cache: dict[tuple[str, str], TrainedModel] = {}
_cache_lock = threading.Lock()


class RegistryError(Exception):
    """A registry operation that cannot be done (unknown version, unreadable artifact...)."""


def artifact_location(row: ModelVersion) -> Path:
    """Absolute path (without suffix) of a registered artifact."""
    if row.kind == ModelVersion.Kind.GLOBAL:
        return GLOBAL_STORE / row.artifact_path
    return Path(settings.MEDIA_ROOT) / row.artifact_path


def global_meta() -> dict[str, Any]:
    """The committed global model's metadata (read once per process: the file ships with the code)."""
    global _global_meta
    if _global_meta is None:
        path = GLOBAL_STORE / f"{GLOBAL_NAME}.json"
        try:
            _global_meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RegistryError(f"the global model is missing ({path}); run `manage.py train_global_model "
                                "--seed 42`") from exc
    return _global_meta


_global_meta: dict[str, Any] | None = None


def load_model(path: Path, sha256: str, *, fresh: bool = False) -> TrainedModel:
    """Load (once per process) and verify a model artifact; `fresh` re-reads and re-verifies the
    file (registration and promotion must see what is on disk now, not what was cached)."""
    key = (str(path), sha256)
    model = None if fresh else _cache.get(key)
    if model is not None:
        return model
    with _cache_lock:
        model = None if fresh else _cache.get(key)
        if model is None:
            model = load_trained_model(path, expected_sha256=sha256)
            _cache[key] = model
    return model


def load_version(row: ModelVersion) -> TrainedModel:
    if row.kind == ModelVersion.Kind.GLOBAL:
        row = global_version_follow(row)
    return load_model(artifact_location(row), row.sha256)


def global_version_follow(row: ModelVersion) -> ModelVersion:
    """Version 0 is the global model shipped with this code. A deployment that ships a retrained one
    replaces the artifact behind it, so the tenant's version-0 row follows (checksum, features,
    training window) instead of refusing the new file forever; and what was fitted on the old
    model's raw scores goes with it (the tenant's calibrations of version 0 and its score
    reservoirs): percentiles of another model's scores mean nothing. Until the calibration is
    refitted, the new model's own global calibration applies."""
    meta = global_meta()
    if row.sha256 == meta["sha256"]:
        return row
    from django.db import connection

    from .models import CalibrationState
    from .pipeline import reservoirs_forget, revisions_forget

    with transaction.atomic():
        row = ModelVersion.objects.select_for_update().get(pk=row.pk)
        if row.sha256 == meta["sha256"]:  # another process got there first
            return row
        previous = row.sha256
        window = meta.get("training_window") or {}
        row.sha256, row.features, row.code_version = meta["sha256"], meta.get("features", []), meta.get("code_version", "")
        row.metrics = meta.get("extra", {}).get("training", {})
        row.training_from, row.training_to = _parse_moment(window.get("from")), _parse_moment(window.get("to"))
        row.notes = f"global cold-start model trained on simulated data (replaced {previous[:12]}… on {timezone.now():%Y-%m-%d})"
        row.save(update_fields=["sha256", "features", "code_version", "metrics", "training_from", "training_to", "notes"])
        CalibrationState.objects.filter(model_version=GLOBAL_VERSION).delete()
        schema = connection.schema_name
        transaction.on_commit(lambda: reservoirs_forget(schema, model_version=GLOBAL_VERSION))
    revisions_forget()  # this process reads the new checksum at once
    return row


def _parse_moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def global_version_ensure() -> ModelVersion:
    """The tenant's version-0 row (created from the committed artifact's metadata on first use);
    active when the tenant has no active model."""
    row = ModelVersion.objects.filter(version=GLOBAL_VERSION).first()
    if row is not None:
        return global_version_follow(row)
    meta = global_meta()
    window = meta.get("training_window") or {}
    with transaction.atomic():
        row, created = ModelVersion.objects.get_or_create(version=GLOBAL_VERSION, defaults={
            "kind": ModelVersion.Kind.GLOBAL, "artifact_path": GLOBAL_NAME, "sha256": meta["sha256"],
            "features": meta.get("features", []), "code_version": meta.get("code_version", ""),
            "metrics": meta.get("extra", {}).get("training", {}),
            "training_from": _parse_moment(window.get("from")), "training_to": _parse_moment(window.get("to")),
            "notes": "global cold-start model trained on simulated data"})
        if created and not ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).exists():
            row.status, row.promoted_at = ModelVersion.Status.ACTIVE, timezone.now()
            row.save(update_fields=["status", "promoted_at"])
    return row


def active_version() -> ModelVersion:
    """The model the tenant scores with (version 0 until a tenant model is promoted)."""
    row = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
    if row is None:
        global_version_ensure()
        row = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
        if row is None:  # version 0 exists but was retired with nothing active: fall back to it
            row = model_promote(version=GLOBAL_VERSION)
    return row


def model_register(*, artifact_path: str, metrics: dict[str, Any] | None = None, notes: str = "") -> ModelVersion:
    """Register a tenant model (artifact under MEDIA_ROOT, written by `TrainedModel.save`) as a
    candidate. The artifact is loaded and verified before the row exists."""
    location = Path(settings.MEDIA_ROOT) / artifact_path
    try:
        meta = json.loads(location.with_name(location.name + ".json").read_text(encoding="utf-8"))
        load_model(location, meta["sha256"], fresh=True)
    except (OSError, ValueError, KeyError, ArtifactError) as exc:
        raise RegistryError(f"cannot register {artifact_path}: {exc}") from exc
    if meta.get("code_version") != CODE_VERSION:
        raise RegistryError(f"artifact built by {meta.get('code_version')!r}, this code is {CODE_VERSION!r}")
    window = meta.get("training_window") or {}
    with transaction.atomic():
        last = ModelVersion.objects.select_for_update().order_by("-version").first()
        version = max(GLOBAL_VERSION, last.version if last else GLOBAL_VERSION) + 1
        return ModelVersion.objects.create(
            version=version, kind=ModelVersion.Kind.TENANT, status=ModelVersion.Status.CANDIDATE,
            artifact_path=artifact_path, sha256=meta["sha256"], metrics=metrics or {},
            features=meta.get("features", []), code_version=meta["code_version"],
            training_from=_parse_moment(window.get("from")), training_to=_parse_moment(window.get("to")), notes=notes)


def model_promote(*, version: int) -> ModelVersion:
    """Make `version` the active model (verified first); the previous active one is retired."""
    if version == GLOBAL_VERSION:
        global_version_ensure()
    row = ModelVersion.objects.filter(version=version).first()
    if row is None:
        raise RegistryError(f"no model version {version}")
    try:
        load_model(artifact_location(row), row.sha256, fresh=True)
    except ArtifactError as exc:
        raise RegistryError(f"model v{version} cannot be loaded: {exc}") from exc
    with transaction.atomic():
        ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).exclude(pk=row.pk).update(
            status=ModelVersion.Status.RETIRED)
        row.status, row.promoted_at = ModelVersion.Status.ACTIVE, timezone.now()
        row.save(update_fields=["status", "promoted_at"])
    return row


def model_rollback() -> ModelVersion:
    """Promote the most recently retired model (the one active before the current one)."""
    previous = (ModelVersion.objects.filter(status=ModelVersion.Status.RETIRED, promoted_at__isnull=False)
                .order_by("-promoted_at").first())
    if previous is None:
        raise RegistryError("no earlier model to roll back to")
    return model_promote(version=previous.version)


def global_model_train(*, out: Path, seed: int = 42, scenario: str = "default", scenario_seed: int = 7,
                       n_estimators: int = 100, days: int | None = None, redis_url: str | None = None) -> dict[str, Any]:
    """Train the global cold-start model from simulated data and write `<out>.npz` / `<out>.json`.

    simulator scenario (generated with `scenario_seed`, NOT the evaluation seed 42 of the accuracy
    bench, so the model is never evaluated on its own training data) -> ingestion validation ->
    the live enrichment code (in a throwaway Redis prefix) -> train_global_model(frame, seed).
    Same arguments -> same arrays -> same sha256 (the JSON's created_at aside)."""
    import uuid as _uuid

    import redis as redis_lib

    from ingestion.schemas import validate_batch
    from scoring.detectors.training import train_global_model
    from scoring.enrich import EnrichConfig, Enricher, clear_state
    from simulator import generate, load_config

    from .pipeline import is_transaction, transaction_inputs

    overrides: dict[str, Any] = {"days": days} if days else {}
    sim = generate(load_config(scenario, **overrides), seed=scenario_seed)
    tz, currency = sim.config.timezone, sim.config.currency
    now = sim.end + timedelta(days=1)
    client = redis_lib.Redis.from_url(redis_url or settings.REDIS_URL)
    prefix = f"train.{_uuid.uuid4().hex[:12]}"
    enricher = Enricher(client, prefix, EnrichConfig(timezone=tz, currency=currency))
    frames = []
    try:
        for chunk in sim.events.batches(20_000):
            tx = [e for e in chunk if is_transaction(e)]
            checked = validate_batch(tx, tenant_tz=tz, tenant_currency=currency, now=now)
            valid = [e for _, e in checked.valid]
            if valid:
                frames.append(enricher.enrich(transaction_inputs(valid)))
    finally:
        clear_state(client, prefix)
    import numpy as np

    frame = {k: np.concatenate([f[k] for f in frames]) for k in frames[0]}
    model = train_global_model(frame, seed=seed, n_estimators=n_estimators)
    meta = model.save(out, version=str(GLOBAL_VERSION),
                      training_window=(sim.start.isoformat(), sim.end.isoformat()))
    return {"path": str(out), "sha256": meta.sha256, "rows": int(len(frame["ts_ms"])), "scenario": scenario,
            "scenario_seed": scenario_seed, "seed": seed, "n_estimators": n_estimators}
