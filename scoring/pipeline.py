"""The transaction scoring path shared by the async consumer and the synchronous fraud-check.

    events (rows of the events table) -> enrichment (Redis, one round trip) -> detectors ->
    calibration -> rules -> consensus -> Anomaly rows for REVIEW/BLOCK (bulk, delivery after commit)

`score_transactions` is the one implementation: the batch consumer calls it with a batch, the
fraud-check with the single payment it has just stored (read back from the events table, so both
see exactly the same input). Engines (model, calibrators, rules, consensus settings) are built
once per worker process and cached by (tenant, model version, rules revision, calibration revision,
config fingerprint): no per-event database or model loads; one small revision query per call.

Redis state can be lost (flush, failover): a marker key under the tenant's prefix says the state
is complete; when it is missing the state is rebuilt from PostgreSQL events of the enrichment
horizon before scoring (`state_ensure`).
"""

from __future__ import annotations

import logging
import struct
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import redis as redis_lib
from django.conf import settings
from django.db import connection
from django.utils import timezone

from pulse.lib.background import after_response_gathered
from scoring.calibration import Calibrator, PercentileCalibrator, calibrator_from_dict
from scoring.consensus import DECISIONS, SEVERITIES, ConsensusConfig, ConsensusResult, ScoringEngine
from scoring.enrich import (
    TRANSACTION_TYPES,
    EnrichConfig,
    Enricher,
    FeatureFrame,
    clear_state,
    rebuild_state,
    related_events,
    sync_traffic_mark,
    tenant_prefix,
)
from scoring.rules import RuleSet

from .config import ScoringConfig, fx_rates_for, scoring_config

log = logging.getLogger(__name__)

# Under the tenant prefix: a flush or clear_state removes it with the state. Versioned with the state
# layout: a deploy that changes what state.lua keeps rebuilds every tenant's state on first use.
MARKER_KEY = "meta:ready:3"
RESERVOIR_KEY = "meta:raw:{version}:{detector}"
AMOUNTS_KEY = "meta:amounts"
NEW_AMOUNTS_KEY = "meta:amounts_new"  # purchase amounts of new customers
WARMUP_KEY = "meta:calibration_warm_n"
AMOUNT_PRIOR = "amount_prior"
NEW_CUSTOMER_AMOUNTS = "new_customer_amounts"  # CalibrationState row: quantiles of new-customer amounts
_PER_BATCH_SAMPLE = 500  # raw scores pushed to the calibration reservoir per batch and detector


# ---------------------------------------------------------------------------------------------
# input


def transaction_inputs(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Enrichment input from stored events (`occurred_at`) or validated ones (`timestamp`).

    A card fingerprint sent as `attributes.card_fingerprint` stands for the payment method: it is
    what "distinct cards per customer" must count (the method alone, "card", would hide card testing).
    """
    from ingestion.storage import event_attributes

    out = []
    for e in events:
        attrs = event_attributes(e)
        card = attrs.get("card_fingerprint") if attrs else None
        out.append({
            "event_id": e.get("event_id"), "type": e.get("type"),
            "timestamp": e.get("occurred_at") or e.get("timestamp"), "customer_id": e.get("customer_id"),
            "ip": e.get("ip"), "device_id": e.get("device_id"),
            "payment_method": str(card) if card else e.get("payment_method"),
            "country": e.get("country"), "amount": e.get("amount"), "currency": e.get("currency"),
            "status": e.get("status"), "channel": e.get("channel"), "order_id": e.get("order_id"),
        })
    return out


def is_transaction(event: Mapping[str, Any]) -> bool:
    return event.get("type") in TRANSACTION_TYPES


def tenant_key(tenant: Any) -> str:
    """The tenant's Redis prefix name: its schema (unique, and already restricted to [a-z0-9_])."""
    return str(tenant.schema_name)


def enrich_config_for(tenant: Any, config: ScoringConfig, prior: tuple[float, float] | None = None,
                      new_customer_quantiles: Sequence[float] | None = None) -> EnrichConfig:
    e = config.enrichment
    kwargs: dict[str, Any] = {}
    if prior is not None:
        kwargs["prior_log_median"], kwargs["prior_log_mad"] = prior
    if new_customer_quantiles:
        kwargs["new_customer_quantiles"] = tuple(float(v) for v in new_customer_quantiles)
    return EnrichConfig(
        timezone=tenant.timezone, currency=tenant.currency, fx_rates=fx_rates_for(tenant),
        new_customer_seconds=e.new_customer_seconds, short_window_seconds=e.short_window_seconds,
        long_window_seconds=e.long_window_seconds, attribute_retention_seconds=e.attribute_retention_seconds,
        profile_ttl_seconds=e.profile_ttl_seconds, return_window_seconds=e.return_window_seconds, **kwargs)


def consensus_config_for(config: ScoringConfig) -> ConsensusConfig:
    c = config.consensus
    return ConsensusConfig(review_threshold=c.review_threshold, block_threshold=c.block_threshold,
                           critical_threshold=c.critical_threshold, default_detector_weight=c.default_detector_weight,
                           detector_weights=dict(c.detector_weights), evidence_start=c.evidence_start,
                           vote_threshold=c.vote_threshold, k_of_n=c.k_of_n)


# ---------------------------------------------------------------------------------------------
# engines, cached per process


@dataclass(frozen=True, slots=True)
class EngineKey:
    schema: str
    model_version: int
    model_sha256: str
    rules_revision: int
    calibration_revision: str
    config: str


def _rule_features(condition: Any) -> list[str]:
    features: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "feature" in node:
                features.append(str(node["feature"]))
            for key in ("all", "any"):
                for child in node.get(key, []) or []:
                    walk(child)
            if "not" in node:
                walk(node["not"])

    walk(condition)
    return features


def _rule_subject(condition: Any) -> str:
    """'ip' or 'device' when a rule is about the IP or device (its anomaly's entity), else 'customer'."""
    features = _rule_features(condition)
    for subject in ("ip", "device"):
        if any(f.startswith(f"{subject}_") for f in features):
            return subject
    return "customer"


_SUBJECT_PREFIXES = (("customer", "cust_"), ("ip", "ip_"), ("device", "device_"))
_RETURN_WINDOW_FEATURES = frozenset({"cust_orders_window", "cust_returned_orders_window", "cust_returns_window",
                                     "cust_return_rate"})


def _rule_windows(condition: Any, enrich: EnrichConfig) -> dict[str, int]:
    """{subject: seconds}: the longest window over which the rule's features look at one customer, IP
    or device (velocity and distinct counts: 1 h / 24 h; returns: the return window). A rule without
    such a feature (an amount, a new device, a failure streak) gives {}: it says nothing about the
    entity's other events."""
    out: dict[str, int] = {}
    for feature in _rule_features(condition):
        if feature in _RETURN_WINDOW_FEATURES:
            seconds = enrich.return_window_seconds
        elif feature.endswith("_1h"):
            seconds = enrich.short_window_seconds
        elif feature.endswith("_24h"):
            seconds = enrich.long_window_seconds
        else:
            continue
        for subject, prefix in _SUBJECT_PREFIXES:
            if feature.startswith(prefix):
                out[subject] = max(out.get(subject, 0), seconds)
    return out


@dataclass
class TenantScorer:
    """Everything needed to score one tenant's transactions, built once per cache key."""

    key: EngineKey
    engine: ScoringEngine
    enrich_config: EnrichConfig
    config: ScoringConfig
    currency: str
    rule_subjects: dict[str, str]
    rule_windows: dict[str, dict[str, int]] = field(default_factory=dict)  # rule -> {subject: seconds}
    _enrichers: dict[int, Enricher] = field(default_factory=dict)

    @property
    def model_version(self) -> int:
        return self.key.model_version

    def enricher(self, client: redis_lib.Redis) -> Enricher:
        enricher = self._enrichers.get(id(client))
        if enricher is None:
            enricher = Enricher(client, self.key.schema, self.enrich_config)
            self._enrichers[id(client)] = enricher
        return enricher


_engines: OrderedDict[EngineKey, TenantScorer] = OrderedDict()
_engines_lock = threading.Lock()
_MAX_ENGINES = 64


# schema -> (monotonic expiry, revisions): saves a query per fraud-check; other processes' model,
# rule and calibration changes reach this one within PULSE_SCORER_REVISION_SECONDS, its own at once
# (signals in apps.py; queryset updates wait for the expiry too).
_revisions_seen: dict[str, tuple[float, tuple[int | None, str | None, int, str]]] = {}


def tenant_state_forget(schema: str) -> None:
    """A tenant schema was created or dropped: its Redis scoring state (velocity, histories,
    reservoirs, the rebuilt marker) and this process's cached engines go with it. A tenant deleted
    and created again under the same slug gets the same schema name: it must start empty, not with
    the previous tenant's customers."""
    from pulse.lib.redis import get_redis

    clear_state(get_redis(), schema)
    with _engines_lock:
        for key in [k for k in _engines if k.schema == schema]:
            del _engines[key]
    _revisions_seen.pop(schema, None)


def revisions_forget(**_: Any) -> None:
    """Saved a rule, model version or calibration in this process: read the revisions again."""
    _revisions_seen.clear()


def _revisions() -> tuple[int | None, str | None, int, str]:
    """(active model version, its sha256, rules revision, calibration revision) in one query, or as
    read less than PULSE_SCORER_REVISION_SECONDS ago by this process."""
    ttl = settings.PULSE_SCORER_REVISION_SECONDS
    schema = connection.schema_name
    seen = _revisions_seen.get(schema) if ttl > 0 else None
    if seen is not None and seen[0] > time.monotonic():
        return seen[1]
    revisions = _revisions_read()
    if ttl > 0 and revisions[0] is not None and revisions[2] != 0:
        _revisions_seen[schema] = (time.monotonic() + ttl, revisions)
    return revisions


def _revisions_read() -> tuple[int | None, str | None, int, str]:
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT (SELECT version FROM scoring_modelversion WHERE status = 'active'),
                   (SELECT sha256 FROM scoring_modelversion WHERE status = 'active'),
                   (SELECT COALESCE(max(id), 0) FROM scoring_ruleversion),
                   (SELECT COALESCE(max(fitted_at)::text, '') || ':' || count(*) FROM scoring_calibrationstate)
        """)
        version, sha, rules_rev, cal_rev = cursor.fetchone()
    return version, sha, int(rules_rev), str(cal_rev)


def scorer_for(tenant: Any) -> TenantScorer:
    """The tenant's scorer for its current model, rules, calibration and config (cached)."""
    from . import registry
    from .services import rules_ensure_defaults

    config = scoring_config(tenant)
    version, sha, rules_rev, cal_rev = _revisions()
    if version is None or rules_rev == 0:
        # First use: version 0 (the global model) and the default rule set.
        registry.active_version()
        rules_ensure_defaults(tenant=tenant)
        version, sha, rules_rev, cal_rev = _revisions()
    if version is None:
        raise RuntimeError("no active model version after registering version 0")
    key = EngineKey(tenant_key(tenant), int(version), str(sha), rules_rev, cal_rev, config.fingerprint())
    scorer = _engines.get(key)
    if scorer is not None:
        return scorer
    with _engines_lock:
        scorer = _engines.get(key)
        if scorer is None:
            scorer = _build_scorer(tenant, key, config)
            _engines[key] = scorer
            for old in [k for k in _engines if k.schema == key.schema and k != key]:
                del _engines[old]  # a tenant's superseded engines are never used again
            while len(_engines) > _MAX_ENGINES:
                _engines.popitem(last=False)
        _engines.move_to_end(key)
    return scorer


def _build_scorer(tenant: Any, key: EngineKey, config: ScoringConfig) -> TenantScorer:
    from . import registry
    from .models import CalibrationState, ModelVersion, Rule

    row = ModelVersion.objects.get(version=key.model_version)
    model = registry.load_version(row)  # first: a replaced global model drops its calibrations here
    states = {s.detector: (calibrator_from_dict(s.calibrator), s.n_reference)
              for s in CalibrationState.objects.filter(model_version=key.model_version)}
    prior_row = CalibrationState.objects.filter(model_version__isnull=True, detector=AMOUNT_PRIOR).first()
    prior = None
    if prior_row is not None and prior_row.n_reference >= config.calibration.warmup_scores:
        prior = (float(prior_row.calibrator["log_median"]), float(prior_row.calibrator["log_mad"]))
    new_row = CalibrationState.objects.filter(model_version__isnull=True, detector=NEW_CUSTOMER_AMOUNTS).first()
    quantiles = None
    if new_row is not None and new_row.n_reference >= config.calibration.warmup_scores:
        quantiles = [float(v) for v in new_row.calibrator["quantiles"]]
    return scorer_assemble(tenant=tenant, key=key, config=config, model=model,
                           rules=[r.definition() for r in Rule.objects.all()], calibrations=states, prior=prior,
                           new_customer_quantiles=quantiles)


def scorer_assemble(*, tenant: Any, key: EngineKey, config: ScoringConfig, model: Any, rules: list[dict[str, Any]],
                    calibrations: Mapping[str, tuple[Calibrator, int]] | None = None,
                    prior: tuple[float, float] | None = None,
                    new_customer_quantiles: Sequence[float] | None = None) -> TenantScorer:
    """A scorer from loaded parts (no database): the tenant's calibration of a detector replaces the
    model's global one once it rests on at least `calibration.warmup_scores` recent scores (the warm-up
    fits; from `min_scores` on, the hourly refit keeps it current)."""
    calibrators: dict[str, Calibrator] = {}
    for det in model.detectors:
        own = (calibrations or {}).get(det.name)
        if own is not None and own[1] >= config.calibration.warmup_scores:
            calibrators[det.name] = own[0]
        else:
            calibrators[det.name] = model.calibrators[det.name]  # global default until enough data
    engine = ScoringEngine(model.detectors, calibrators, RuleSet(rules), consensus_config_for(config))
    enrich_config = enrich_config_for(tenant, config, prior, new_customer_quantiles)
    return TenantScorer(key=key, engine=engine, config=config, enrich_config=enrich_config, currency=tenant.currency,
                        rule_subjects={r["name"]: _rule_subject(r["condition"]) for r in rules},
                        rule_windows={r["name"]: _rule_windows(r["condition"], enrich_config) for r in rules})


def engines_clear() -> None:
    """Forget cached engines (tests, or after editing artifacts in place)."""
    with _engines_lock:
        _engines.clear()


# ---------------------------------------------------------------------------------------------
# Redis state: marker, rebuild


def _lock_key(tenant: Any) -> str:
    # Outside the tenant prefix: rebuild_state clears the prefix, the lock must survive it.
    return f"pulse:scoring-rebuild-lock:{tenant_key(tenant)}"


def state_ready(client: redis_lib.Redis, tenant: Any) -> bool:
    return bool(client.exists(tenant_prefix(tenant_key(tenant)) + MARKER_KEY))


def _stored_transactions(*, since: datetime, exclude_batch_id: int | None) -> Iterator[dict[str, Any]]:
    """Stored payment/order/return events since `since`, oldest first, streamed (server-side cursor)."""
    sql = ("SELECT event_id, type, occurred_at, customer_id, ip, device_id, payment_method, country, amount, "
           "currency, status, channel, order_id, attributes FROM events WHERE type IN ('payment', 'order', 'return') "
           "AND occurred_at >= %s" + (" AND batch_id <> %s" if exclude_batch_id is not None else "")
           + " ORDER BY occurred_at, id")
    params: list[Any] = [since] + ([exclude_batch_id] if exclude_batch_id is not None else [])
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        names = [c.name for c in cursor.description]
        while rows := cursor.fetchmany(5_000):
            yield from transaction_inputs([dict(zip(names, r, strict=True)) for r in rows])


def state_rebuild(*, tenant: Any, client: redis_lib.Redis, exclude_batch_id: int | None = None,
                  now: datetime | None = None) -> int:
    """Rebuild the tenant's enrichment state from PostgreSQL (events of the horizon), then set the
    marker. Returns events applied. `exclude_batch_id`: the batch about to be scored (already
    stored, but it must be applied by its own scoring, not by the rebuild)."""
    config = enrich_config_for(tenant, scoring_config(tenant))
    since = (now or timezone.now()) - timedelta(seconds=config.rebuild_horizon_seconds)
    applied = rebuild_state(client, tenant_key(tenant), _stored_transactions(since=since, exclude_batch_id=exclude_batch_id),
                            config=config)
    client.set(tenant_prefix(tenant_key(tenant)) + MARKER_KEY, timezone.now().isoformat())
    return applied


def state_ensure(*, tenant: Any, client: redis_lib.Redis, exclude_batch_id: int | None = None,
                 wait_seconds: float = 60.0) -> bool:
    """Make sure the Redis state is complete before scoring; rebuild it when the marker is missing.

    One process rebuilds (a Redis lock), the others wait for the marker up to `wait_seconds`.
    Returns False when the state is still incomplete after waiting (the caller decides)."""
    if state_ready(client, tenant):
        return True
    token = uuid.uuid4().hex
    if client.set(_lock_key(tenant), token, nx=True, ex=900):
        try:
            if not state_ready(client, tenant):
                started = time.monotonic()
                applied = state_rebuild(tenant=tenant, client=client, exclude_batch_id=exclude_batch_id)
                log.warning("scoring state of %s rebuilt from %d events in %.1f s", tenant_key(tenant), applied,
                            time.monotonic() - started)
        finally:
            if client.get(_lock_key(tenant)) == token.encode():
                client.delete(_lock_key(tenant))
        return True
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if state_ready(client, tenant):
            return True
    return False


# ---------------------------------------------------------------------------------------------
# scoring


@dataclass
class ScoredTransactions:
    events: list[Mapping[str, Any]]  # the transaction events, in scoring order
    frame: FeatureFrame
    result: ConsensusResult
    scorer: TenantScorer
    client: redis_lib.Redis | None = None  # the Redis holding the state these were scored against

    def body(self, i: int) -> dict[str, Any]:
        """The fraud-check answer of row i."""
        return {**self.result.row(i), "model_version": self.scorer.model_version}


def score_transactions(*, tenant: Any, events: Sequence[Mapping[str, Any]], client: redis_lib.Redis | None = None,
                       scorer: TenantScorer | None = None, exclude_batch_id: int | None = None,
                       wait_seconds: float = 60.0) -> ScoredTransactions:
    """Enrich (applying the events to the Redis state, in order) and score transaction events.
    The one implementation behind the batch consumer, the fraud-check and the accuracy bench."""
    client, scorer, tx = _scoring_start(tenant=tenant, events=events, client=client, scorer=scorer,
                                        exclude_batch_id=exclude_batch_id, wait_seconds=wait_seconds)
    return _scored(tx, scorer.enricher(client).enrich(transaction_inputs(tx)), scorer, client)


def score_transactions_chunks(*, tenant: Any, events: Sequence[Mapping[str, Any]], chunk_size: int,
                              client: redis_lib.Redis | None = None, exclude_batch_id: int | None = None,
                              ) -> Iterator[ScoredTransactions]:
    """`score_transactions` over consecutive chunks of the events, for the batch consumer: while the
    caller writes chunk k, chunk k+1 is already being enriched (the Lua call runs in Redis's own
    process, and this thread waits on the socket without the GIL). Same state, same order, same
    features and scores as one call; the enrichment is at most one chunk ahead of the caller."""
    from concurrent.futures import ThreadPoolExecutor

    client, scorer, tx = _scoring_start(tenant=tenant, events=events, client=client, scorer=None,
                                        exclude_batch_id=exclude_batch_id, wait_seconds=60.0)
    enricher = scorer.enricher(client)
    parts = [tx[i:i + chunk_size] for i in range(0, len(tx), max(1, chunk_size))]
    if len(parts) <= 1:
        yield _scored(tx, enricher.enrich(transaction_inputs(tx)), scorer, client)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pulse-enrich") as pool:
        pending = pool.submit(enricher.enrich, transaction_inputs(parts[0]))
        for k, part in enumerate(parts):
            frame = pending.result()
            if k + 1 < len(parts):
                pending = pool.submit(enricher.enrich, transaction_inputs(parts[k + 1]))
            yield _scored(part, frame, scorer, client)


def _scoring_start(*, tenant: Any, events: Sequence[Mapping[str, Any]], client: redis_lib.Redis | None,
                   scorer: TenantScorer | None, exclude_batch_id: int | None, wait_seconds: float,
                   ) -> tuple[redis_lib.Redis, TenantScorer, list[Mapping[str, Any]]]:
    from pulse.lib.redis import get_redis

    client = client or get_redis()
    scorer = scorer or scorer_for(tenant)
    tx = [e for e in events if is_transaction(e)]
    if not state_ensure(tenant=tenant, client=client, exclude_batch_id=exclude_batch_id, wait_seconds=wait_seconds):
        raise StateNotReady(f"the scoring state of {tenant_key(tenant)} is being rebuilt")
    return client, scorer, tx


def _scored(tx: list[Mapping[str, Any]], frame: FeatureFrame, scorer: TenantScorer,
            client: redis_lib.Redis | None = None) -> ScoredTransactions:
    # Context outside the feature contract that a tenant's supervised model may use (a compromised
    # store is only learnable from it).
    frame["store_id"] = np.array([e.get("store_id") or "" for e in tx], dtype=object)
    return ScoredTransactions(tx, frame, scorer.engine.score(frame), scorer, client)


class StateNotReady(RuntimeError):
    """Another process is rebuilding the tenant's Redis state; retry later."""


def anomalies_build(scored: ScoredTransactions, *, tenant: Any, rows: Sequence[int] | None = None) -> list[Any]:
    """Unsaved Anomaly rows for the flagged events whose decision the tenant turns into anomalies."""
    from .models import Anomaly

    result, frame, scorer = scored.result, scored.frame, scored.scorer
    wanted = {"REVIEW": 1, "BLOCK": 2}
    codes = [wanted[d] for d in scorer.config.anomaly_decisions]
    idx = np.flatnonzero(np.isin(result.decision_code, codes)) if rows is None else np.asarray(rows, dtype=int)
    out = []
    links: list[tuple[int, int, str, str, int]] = []  # (row, anomaly index, entity type, entity, window seconds)
    for i in idx.tolist():
        if result.decision_code[i] not in codes:
            continue
        event = scored.events[i]
        reasons = result.reasons(i)
        entity_type, entity = _entity(event, reasons, scorer.rule_subjects)
        window = _link_window(reasons, entity_type, scorer.rule_windows)
        if window > 0 and event.get(_ENTITY_COLUMNS[entity_type]):
            links.append((i, len(out), entity_type, str(event[_ENTITY_COLUMNS[entity_type]]), window))
        dims = {k: str(event[c]) for k, c in (("channel", "channel"), ("store", "store_id"), ("country", "country"),
                                               ("type", "type")) if event.get(c)}
        dims["entity_type"] = entity_type
        amount = float(frame["amount_tenant"][i])
        out.append(Anomaly(
            kind=Anomaly.Kind.TRANSACTION, occurred_at=event.get("occurred_at") or event.get("timestamp"),
            entity=entity[:200], event_ids=[str(event["event_id"])], score=float(result.risk[i]),
            severity=SEVERITIES[int(result.severity_code[i])], decision=DECISIONS[int(result.decision_code[i])],
            direction="up",
            observed=amount, dimensions=dims, reasons=reasons, detectors=result.detectors(i),
            impact={"amount_at_risk": round(amount, 2), "currency": scorer.currency},
        ))
    if links:
        _link_related(scored, tenant, [(i, out[a], t, e, w) for i, a, t, e, w in links])
    return out


# An anomaly about a customer, IP or device raised by a windowed signal lists the entity's earlier
# events of that window: an analyst told "IP x: 4 customers in 24 h" wants every payment of the
# ring (to refund, block, dispute), not only the one that tipped the rule. At most this many ids.
LINK_CAP = 50
_ENTITY_COLUMNS = {"customer": "customer_id", "ip": "ip", "device": "device_id"}


def _link_window(reasons: list[dict[str, Any]], entity_type: str, windows: Mapping[str, Mapping[str, int]]) -> int:
    """Seconds back to link: the longest window of the fired rules that look at this entity (0: none)."""
    seconds = 0
    for reason in reasons:
        detector = str(reason.get("detector", ""))
        if detector.startswith("rule:"):
            seconds = max(seconds, windows.get(detector[5:], {}).get(entity_type, 0))
    return seconds


def _link_related(scored: ScoredTransactions, tenant: Any,
                  links: Sequence[tuple[int, Any, str, str, int]]) -> None:
    """Append to each anomaly's event_ids (the triggering event stays first) the entity's earlier
    events of the same type within the window, newest first, up to LINK_CAP ids in all.

    Read from the enrichment state, one Redis call for the whole batch: the entity's velocity list
    of payments or orders (kept 24 h), the customer's return events (kept for the return window).
    That state is complete even after a Redis loss (`state_ensure` rebuilds it from PostgreSQL
    before scoring) and costs no index on the events table. Events later in the batch (already
    applied) are left out. Limits: a purchase is linked over at most the long window (what the
    velocity lists keep); a list is pruned by later events, so a batch spanning many hours (a
    backfill) may miss a few early ids."""
    from pulse.lib.redis import get_redis

    client = scored.client or get_redis()
    cfg = scored.scorer.enrich_config
    ts = scored.frame["ts_ms"]
    requests: list[tuple[str, str, str, int, int, int]] = []
    wanted: list[tuple[Any, int]] = []
    for i, anomaly, entity_type, entity, window in links:
        code = TRANSACTION_TYPES.get(str(scored.events[i].get("type")), "")
        if code == "R":
            if entity_type != "customer":
                continue  # returns are kept per customer only
            seconds, limit = min(window, cfg.return_window_seconds), cfg.return_cap
        elif code:
            seconds, limit = min(window, cfg.long_window_seconds), LINK_CAP + 1
        else:
            continue
        requests.append((entity_type, code, entity, int(ts[i]), seconds, limit))
        wanted.append((anomaly, i))
    if not wanted:
        return
    position = {str(e.get("event_id")): k for k, e in enumerate(scored.events)}
    found = related_events(client, tenant_prefix(tenant_key(tenant)), requests)
    for (anomaly, i), eids in zip(wanted, found, strict=True):
        ids = anomaly.event_ids
        for eid in eids:
            if eid in ids or position.get(eid, -1) > i:
                continue
            ids.append(eid)
            if len(ids) >= LINK_CAP:
                break


def _entity(event: Mapping[str, Any], reasons: list[dict[str, Any]], subjects: Mapping[str, str]) -> tuple[str, str]:
    """The customer by default; the IP or device when the strongest rule that fired is about them."""
    for reason in reasons:
        detector = str(reason.get("detector", ""))
        if detector.startswith("rule:"):
            subject = subjects.get(detector[5:], "customer")
            column = {"ip": "ip", "device": "device_id"}.get(subject)
            if column and event.get(column):
                return subject, str(event[column])
            break
    for subject, column in (("customer", "customer_id"), ("ip", "ip"), ("device", "device_id")):
        if event.get(column):
            return subject, str(event[column])
    return "customer", "guest"


def reservoir_push(scored: ScoredTransactions, client: redis_lib.Redis, *, tenant: Any,
                   sample: int = _PER_BATCH_SAMPLE) -> None:
    """Feed the calibration reservoirs: a sample (`sample` rows, evenly spaced) of these raw detector
    scores and amounts (one pipeline). The calibration task fits each tenant's percentile calibrators
    on them."""
    _reservoirs_write(client, [_reservoir_values(scored, tenant=tenant, sample=sample)])


def reservoir_push_gathered(scored: ScoredTransactions, *, tenant: Any) -> None:
    """`reservoir_push` after the answer, one pipeline for all the fraud-checks of a short window."""
    values = _reservoir_values(scored, tenant=tenant, sample=_PER_BATCH_SAMPLE)
    after_response_gathered(_reservoirs_flush, None, values)


def _reservoirs_flush(_: object, values: list[tuple[int, dict[str, list[bytes]]]]) -> None:
    from pulse.lib.redis import get_redis

    # Fraud-checks were answered: batches enrich in short script calls for a while (see engine).
    _reservoirs_write(get_redis(), values, sync_traffic=True)


def _reservoir_values(scored: ScoredTransactions, *, tenant: Any, sample: int) -> tuple[int, dict[str, list[bytes]]]:
    """(reservoir size, {reservoir key: packed values to append}) for a sample of a scored batch."""
    n = len(scored.events)
    size = scored.scorer.config.calibration.reservoir_size
    out: dict[str, list[bytes]] = {}
    if n == 0 or sample <= 0:
        return size, out
    take = np.unique(np.linspace(0, n - 1, min(n, sample)).astype(int))
    prefix = tenant_prefix(tenant_key(tenant))
    for name, scores in scored.result.scores.items():
        raw = np.asarray(scores.raw, dtype=np.float64)[take]
        out[prefix + RESERVOIR_KEY.format(version=scored.scorer.model_version, detector=name)] = [
            struct.pack("<d", v) for v in raw.tolist()]
    purchases = np.flatnonzero(scored.frame["event_type"] != "return")
    amounts = np.asarray(scored.frame["amount_tenant"], dtype=np.float64)
    if purchases.size:
        out[prefix + AMOUNTS_KEY] = [struct.pack("<d", v) for v in amounts[purchases[:sample]].tolist()]
    new = purchases[np.asarray(scored.frame["is_new_customer"])[purchases] == 1]
    if new.size:
        out[prefix + NEW_AMOUNTS_KEY] = [struct.pack("<d", v) for v in amounts[new[:sample]].tolist()]
    return size, out


def _reservoirs_write(client: redis_lib.Redis, values: Sequence[tuple[int, dict[str, list[bytes]]]], *,
                      sync_traffic: bool = False) -> None:
    """Append to each reservoir in order and keep its newest `size` values: one pipeline (which
    also marks synchronous traffic when asked)."""
    merged: dict[str, list[bytes]] = {}
    sizes: dict[str, int] = {}
    for size, batch in values:
        for key, packed in batch.items():
            merged.setdefault(key, []).extend(packed)
            sizes[key] = size
    if not merged and not sync_traffic:
        return
    pipe = client.pipeline(transaction=False)
    if sync_traffic:
        sync_traffic_mark(pipe)
    for key, packed in merged.items():
        pipe.rpush(key, *packed)
        pipe.ltrim(key, -sizes[key], -1)
        pipe.expire(key, 30 * 86_400)
    pipe.execute()


def reservoir_read(client: redis_lib.Redis, *, tenant: Any, model_version: int | None, detector: str) -> np.ndarray:
    prefix = tenant_prefix(tenant_key(tenant))
    key = prefix + {AMOUNT_PRIOR: AMOUNTS_KEY, NEW_CUSTOMER_AMOUNTS: NEW_AMOUNTS_KEY}.get(
        detector, RESERVOIR_KEY.format(version=model_version, detector=detector))
    values: list[bytes] = client.lrange(key, 0, -1)  # type: ignore[assignment]  # sync client
    return np.frombuffer(b"".join(values), dtype="<f8") if values else np.empty(0)


def reservoirs_forget(schema: str, *, model_version: int) -> int:
    """Delete a tenant's raw-score reservoirs of one model version (its model was replaced)."""
    from pulse.lib.redis import get_redis

    client = get_redis()
    pattern = (tenant_prefix(schema) + RESERVOIR_KEY.format(version=model_version, detector="*")).replace("[", "\\[")
    keys = list(client.scan_iter(match=pattern, count=1000))
    return int(client.unlink(*keys)) if keys else 0  # type: ignore[arg-type]  # sync client


# ---------------------------------------------------------------------------------------------
# the batch consumer


# The consumer scores a batch in chunks of this many events, enriching the next while writing one.
CONSUME_CHUNK = 2_500


def transactions_consume(*, batch: Any, events: list[dict[str, Any]]) -> None:
    """Batch consumer (settings.PULSE_BATCH_CONSUMERS): score the batch's payments, orders and returns
    and record REVIEW/BLOCK ones as anomalies, in the consumer's transaction.

    Batches stored by the fraud-check are skipped: that payment was enriched, scored and (when
    flagged) recorded synchronously inside the very transaction that stored it, so scoring it here
    would count it twice (the enricher would detect the replay, but a second anomaly would be written).
    """
    from pulse.lib.redis import get_redis
    from tenants.selectors import tenant_current

    from .services import anomalies_record

    if getattr(batch, "source", "") == "fraud_check":
        return
    if not any(is_transaction(e) for e in events):
        return
    tenant = tenant_current()
    client = get_redis()
    from learning.services import scored_events_record

    n_tx = sum(1 for e in events if is_transaction(e))
    for scored in score_transactions_chunks(tenant=tenant, events=events, client=client, exclude_batch_id=batch.pk,
                                            chunk_size=CONSUME_CHUNK):
        anomalies_record(anomalies=anomalies_build(scored, tenant=tenant))
        scored_events_record(scored=scored)  # what learning (recalibration, drift, retraining) reads
        # The batch's sample shared out over its chunks, as when it was scored in one piece.
        reservoir_push(scored, client, tenant=tenant, sample=-(-_PER_BATCH_SAMPLE * len(scored.events) // n_tx))
    calibration_warmup(scored, client, tenant=tenant)


def calibration_warmup(scored: ScoredTransactions, client: redis_lib.Redis, *, tenant: Any) -> bool:
    """A new tenant is scored with the global calibration, which may not fit its traffic at all (other
    amounts, other velocities). Rather than wait for the hourly refit, fit the tenant's calibrators as
    soon as the reservoir holds `warmup_scores` values and again each time it doubles, until the full
    `min_scores` is reached. Returns whether a refit was queued."""
    calibration = scored.scorer.config.calibration
    if not scored.result.scores:
        return False
    prefix = tenant_prefix(tenant_key(tenant))
    detector = sorted(scored.result.scores)[0]
    size = client.llen(prefix + RESERVOIR_KEY.format(version=scored.scorer.model_version, detector=detector))
    last = int(client.get(prefix + WARMUP_KEY) or 0)
    if last >= calibration.min_scores or size < calibration.warmup_scores or size < 2 * last:
        return False
    client.set(prefix + WARMUP_KEY, int(size), ex=30 * 86_400)  # type: ignore[arg-type]

    def refit() -> None:
        from .tasks import calibration_refresh

        calibration_refresh.delay(min_scores=calibration.warmup_scores)

    from django.db import transaction

    transaction.on_commit(refit)
    return True


# ---------------------------------------------------------------------------------------------
# calibration


def calibrations_from_reservoirs(*, client: redis_lib.Redis, tenant: Any, model_version: int, detectors: Sequence[str],
                                 min_scores: int) -> tuple[dict[str, tuple[Calibrator, int]], tuple[float, float, int] | None]:
    """Percentile calibrators (detector -> (calibrator, n)) and the amount prior (median, mad, n)
    from the reservoirs, for those with at least `min_scores` values."""
    from scoring.enrich import amount_prior

    fitted: dict[str, tuple[Calibrator, int]] = {}
    for name in detectors:
        raw = reservoir_read(client, tenant=tenant, model_version=model_version, detector=name)
        raw = raw[np.isfinite(raw)]
        if raw.size >= min_scores:
            fitted[name] = (PercentileCalibrator.fit(raw), int(raw.size))
    amounts = reservoir_read(client, tenant=tenant, model_version=None, detector=AMOUNT_PRIOR)
    prior = None
    if amounts.size >= min_scores:
        median, mad = amount_prior(amounts)
        prior = (median, max(mad, 0.05), int(amounts.size))
    return fitted, prior


def new_customer_quantiles_from_reservoir(*, client: redis_lib.Redis, tenant: Any,
                                          min_scores: int) -> tuple[tuple[float, ...], int] | None:
    """Quantiles of the recent new-customer purchase amounts and their count, when the reservoir
    holds at least `min_scores` of them (else None: the amount prior stands in)."""
    from scoring.enrich import new_customer_quantiles

    amounts = reservoir_read(client, tenant=tenant, model_version=None, detector=NEW_CUSTOMER_AMOUNTS)
    amounts = amounts[np.isfinite(amounts)]
    if amounts.size < min_scores:
        return None
    return new_customer_quantiles(amounts), int(amounts.size)


def calibration_fit(*, tenant: Any, client: redis_lib.Redis | None = None,
                    min_scores: int | None = None) -> dict[str, int]:
    """Fit the tenant's percentile calibrators (active model) and amount prior from the reservoirs,
    where there is enough data; below `calibration.min_scores` the global defaults stay.
    Returns {detector: reference size} for what was stored."""
    from pulse.lib.redis import get_redis

    from . import registry
    from .models import CalibrationState

    client = client or get_redis()
    config = scoring_config(tenant)
    row = registry.active_version()
    model = registry.load_version(row)
    fitted, prior = calibrations_from_reservoirs(client=client, tenant=tenant, model_version=row.version,
                                                 detectors=[d.name for d in model.detectors],
                                                 min_scores=min_scores or config.calibration.min_scores)
    stored: dict[str, int] = {}
    for name, (cal, n) in fitted.items():
        CalibrationState.objects.update_or_create(model_version=row.version, detector=name, defaults={
            "calibrator": cal.to_dict(), "n_reference": n, "fitted_at": timezone.now()})
        stored[name] = n
    if prior is not None:
        CalibrationState.objects.update_or_create(model_version=None, detector=AMOUNT_PRIOR, defaults={
            "calibrator": {"kind": AMOUNT_PRIOR, "log_median": prior[0], "log_mad": prior[1]},
            "n_reference": prior[2], "fitted_at": timezone.now()})
        stored[AMOUNT_PRIOR] = prior[2]
    new = new_customer_quantiles_from_reservoir(client=client, tenant=tenant,
                                                min_scores=min_scores or config.calibration.min_scores)
    if new is not None:
        CalibrationState.objects.update_or_create(model_version=None, detector=NEW_CUSTOMER_AMOUNTS, defaults={
            "calibrator": {"kind": NEW_CUSTOMER_AMOUNTS, "quantiles": list(new[0])},
            "n_reference": new[1], "fitted_at": timezone.now()})
        stored[NEW_CUSTOMER_AMOUNTS] = new[1]
    return stored
