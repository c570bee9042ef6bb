"""Writes of the scoring layer. Every detector records anomalies through `anomalies_record`, which
writes them in bulk and hands them to delivery after the transaction commits. Rules are changed
only here (validated, versioned); the fraud-check and the rules dry-run live here too."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from ingestion.services import events_ingest
from pulse.lib.background import after_response_gathered
from pulse.lib.combine import Combiner, Failure
from pulse.lib.redis import get_redis
from scoring.rules import RuleValidationError, default_rules, validate_rule
from scoring.rules.schema import MAX_RULES

from .bulk import rows_insert
from .models import Anomaly, Rule, RuleVersion

log = logging.getLogger(__name__)


def anomalies_record(*, anomalies: Sequence[Anomaly], after_response: bool = False) -> list[Anomaly]:
    """Bulk-insert unsaved Anomaly instances; delivery (alerts, live feed) starts after commit.

    `after_response` (the fraud-check) sends the hand-off after the answer, one Celery message for the
    anomalies a tenant records within PULSE_HAND_OVER_COALESCE_SECONDS; a hand-off lost with the
    process is dispatched by `alerts.services.anomalies_recover` (every minute)."""
    if not anomalies:
        return []
    for anomaly in anomalies:
        if not anomaly.fingerprint:
            anomaly.fingerprint = anomaly_fingerprint(anomaly)
    created = list(anomalies)
    rows_insert(Anomaly, created)  # bulk_create with one UNNEST statement (see scoring.bulk: why)
    ids = [a.pk for a in created]
    if after_response:
        schema = connection.schema_name  # the background thread has no tenant of its own
        transaction.on_commit(lambda: after_response_gathered(_anomalies_hand_over, schema, ids))
    else:
        transaction.on_commit(lambda: _anomalies_hand_over(None, [ids]))
    return created


def _anomalies_hand_over(schema: str | None, id_lists: list[list[int]]) -> None:
    from alerts.tasks import anomalies_dispatch
    from pulse.celery import SCHEMA_HEADER

    ids = [i for part in id_lists for i in part]
    if schema is None:
        anomalies_dispatch.delay(ids)  # enqueued in the current schema
    else:
        anomalies_dispatch.apply_async((ids,), headers={SCHEMA_HEADER: schema})


def anomaly_fingerprint(anomaly: Anomaly) -> str:
    detector = max(anomaly.detectors, key=anomaly.detectors.get) if anomaly.detectors else "consensus"
    subject = anomaly.metric or anomaly.entity
    dims = ",".join(f"{k}={v}" for k, v in sorted((anomaly.dimensions or {}).items()))
    return f"{anomaly.kind}:{detector}:{subject}:{dims}"[:200]


# ---------------------------------------------------------------------------------------------
# rules (every change validated, versioned)


def _rule_errors(exc: RuleValidationError) -> dict[str, list[str]]:
    """Paths relative to the request body: 'rule.condition.all[0].op' -> 'condition.all[0].op'."""
    out: dict[str, list[str]] = {}
    for path, message in exc.errors:
        key = path[len("rule."):] if path.startswith("rule.") else ("non_field_errors" if path == "rule" else path)
        out.setdefault(key, []).append(message)
    return out


class RuleError(ValueError):
    """A rule change refused, with field-level reasons (paths relative to the rule)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def _rule_validated(definition: Any, *, exclude_pk: int | None = None) -> dict[str, Any]:
    try:
        rule = validate_rule(definition, "rule")
    except RuleValidationError as exc:
        raise RuleError(_rule_errors(exc)) from exc
    clash = Rule.objects.filter(name=rule["name"])
    if exclude_pk is not None:
        clash = clash.exclude(pk=exclude_pk)
    if clash.exists():
        raise RuleError({"name": [f"a rule named {rule['name']!r} already exists"]})
    if exclude_pk is None and Rule.objects.count() >= MAX_RULES:
        raise RuleError({"non_field_errors": [f"a tenant has at most {MAX_RULES} rules"]})
    return rule


def _version(rule: Rule, change: str, changed_by: str) -> None:
    RuleVersion.objects.create(rule=rule if change != RuleVersion.Change.DELETED else None, rule_name=rule.name,
                               version=rule.version, change=change, definition=rule.definition(),
                               changed_by=changed_by[:200])


def rule_create(*, definition: Any, changed_by: str = "") -> Rule:
    """Validate and store a new rule (version 1). Raises RuleError with path-precise reasons."""
    data = _rule_validated(definition)
    with transaction.atomic():
        rule = Rule.objects.create(**data, version=1)
        _version(rule, RuleVersion.Change.CREATED, changed_by)
    return rule


def rule_update(*, rule: Rule, changes: dict[str, Any], changed_by: str = "", partial: bool = True) -> Rule:
    """Apply changes (all fields for a PUT, some for a PATCH) as a new version of the rule."""
    if not isinstance(changes, dict):
        raise RuleError({"non_field_errors": ["expected a JSON object"]})
    merged = {**rule.definition(), **changes} if partial else changes
    data = _rule_validated(merged, exclude_pk=rule.pk)
    with transaction.atomic():
        locked = Rule.objects.select_for_update().get(pk=rule.pk)
        for key, value in data.items():
            setattr(locked, key, value)
        locked.version += 1
        locked.updated_at = timezone.now()
        locked.save()
        _version(locked, RuleVersion.Change.UPDATED, changed_by)
    return locked


def rule_delete(*, rule: Rule, changed_by: str = "") -> None:
    """Delete a rule; its history stays (a 'deleted' version closes it)."""
    with transaction.atomic():
        locked = Rule.objects.select_for_update().get(pk=rule.pk)
        locked.version += 1
        _version(locked, RuleVersion.Change.DELETED, changed_by)
        locked.delete()


def tenant_default_rules(thresholds: Any) -> list[dict[str, Any]]:
    """The rule set a tenant starts with: the product brief's six rules (scoring.rules.default_rules)
    with two adaptations, plus an account-takeover and a serial-returner rule the six do not cover.

    A fixed amount cannot suit every shop; the shop's own data can:
    - "new customer spending over 200" also requires the amount to be in the top
      (1 - new_customer_amount_percentile) of the shop's recent new-customer purchases (the empirical
      distribution, refitted with the calibration; a log-normal prior before there is data). In a shop
      where most buyers are first-time buyers and 200 is an ordinary basket, the fixed amount alone
      flags ordinary customers; a robust z against a log-normal prior (the earlier gate) misjudges
      the tail, where real amount distributions are not log-normal.
    - "amount over 500" also requires the amount to be unusual (amount_robust_z >= 2: against the
      customer's own history, or the tenant's amount prior for a customer without history).
    - account takeover: a known customer on a new device from a new country or IP, spending far
      above their own usual amounts.
    - serial returner: a return by a customer who returned at least `serial_return_orders` orders
      in the return window, and at least `serial_return_rate` of the orders bought there.
    """
    rules = default_rules(**thresholds.brief_defaults())
    unusual = {"feature": "amount_robust_z", "op": ">=", "value": thresholds.unusual_amount_z}
    for rule in rules:
        if rule["name"] == "new_customer_high_amount":
            rule["condition"]["all"].append({"feature": "amount_new_customer_percentile", "op": ">=",
                                             "value": thresholds.new_customer_amount_percentile})
            rule["description"] += " (in the top of this shop's new-customer purchases)"
        elif rule["name"] == "large_amount":
            rule["condition"] = {"all": [rule["condition"], unusual]}
            rule["description"] += " (unusually large for this customer, or this shop)"
    rules += [
        {"name": "account_takeover", "description": "known customer on a new device from a new place, spending "
         "far above their usual",
         "condition": {"all": [{"feature": "is_new_customer", "op": "==", "value": 0},
                               {"feature": "new_device", "op": "==", "value": 1},
                               {"any": [{"feature": "new_country", "op": "==", "value": 1},
                                        {"feature": "new_ip", "op": "==", "value": 1}]},
                               {"feature": "amount_robust_z", "op": ">=", "value": thresholds.takeover_amount_z}]},
         "score": 0.5, "severity": "high", "action": "review", "enabled": True},
        serial_returner_rule(thresholds),
    ]
    return rules


def serial_returner_rule(thresholds: Any) -> dict[str, Any]:
    """Default rule on returns: the customer returns most of what they buy, again and again."""
    return {
        "name": "serial_returner",
        "description": f"{thresholds.serial_return_orders} or more returned orders, "
                       f"{thresholds.serial_return_rate:.0%} or more of the customer's orders returned",
        "condition": {"all": [{"feature": "event_type", "op": "==", "value": "return"},
                              {"feature": "cust_returned_orders_window", "op": ">=",
                               "value": thresholds.serial_return_orders},
                              {"feature": "cust_return_rate", "op": ">=", "value": thresholds.serial_return_rate}]},
        "score": 0.45, "severity": "medium", "action": "review", "enabled": True}


def rules_ensure_defaults(*, tenant: Any) -> int:
    """Create the default rule set (with the tenant's configured thresholds) the first time a tenant's
    rules are used. A tenant that later deletes every rule keeps an empty set. Returns rules created."""
    if RuleVersion.objects.exists():
        return 0
    from .config import scoring_config

    thresholds = scoring_config(tenant).rules
    with transaction.atomic():
        with connection.cursor() as cursor:  # two workers using a new tenant at once create it once
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':scoring-rules'))")
        if RuleVersion.objects.exists():
            return 0
        created = 0
        for definition in tenant_default_rules(thresholds):
            rule = Rule.objects.create(**validate_rule(definition), version=1)
            _version(rule, RuleVersion.Change.CREATED, "defaults")
            created += 1
    return created


# ---------------------------------------------------------------------------------------------
# rule dry-run


class DryRunError(ValueError):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def rule_dry_run(*, tenant: Any, rule: Any, days: int, sample_size: int = 20, max_events: int = 200_000,
                 now: datetime | None = None) -> dict[str, Any]:
    """How many of the tenant's payments, orders and returns of the last `days` days `rule` would have flagged.

    Features are recomputed by replaying the stored events through the live enrichment code into a
    throwaway Redis prefix (deleted afterwards), starting `dry_run_warmup_days` before the window so
    that 1 h / 24 h velocity and recent customer history are right at the window's start (a
    customer last seen before the warm-up looks newer than live scoring saw it). Stored features
    would be cheaper to read but would freeze today's feature definitions into the table and cost
    a wide row per event forever; a dry-run is rare, so recomputing is the better trade."""
    from scoring.enrich import Enricher, clear_state
    from scoring.rules import RuleSet

    from .config import scoring_config
    from .pipeline import scorer_for, transaction_inputs

    try:
        validated = validate_rule(rule, "rule")
    except RuleValidationError as exc:
        raise DryRunError(exc.as_dict()) from exc
    now = now or timezone.now()
    start = now - timedelta(days=days)
    warm_start = start - timedelta(days=scoring_config(tenant).dry_run_warmup_days)
    evaluated_types = ("payment", "order", "return")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM events WHERE type IN ('payment', 'order', 'return') AND occurred_at >= %s "
                       "AND occurred_at < %s", [start, now])
        in_window = int(cursor.fetchone()[0])
    if in_window > max_events:
        raise DryRunError({"days": [f"{in_window} events in that window; at most {max_events} can be dry-run, "
                                    "use fewer days"]})
    scorer = scorer_for(tenant)
    ruleset = RuleSet([{**validated, "enabled": True}])
    compiled = ruleset.rules[0]
    client = get_redis()
    prefix = f"dryrun.{tenant.schema_name[:30]}.{uuid.uuid4().hex[:12]}"
    enricher = Enricher(client, prefix, scorer.enrich_config)
    evaluated = flagged = 0
    sample: list[dict[str, Any]] = []
    try:
        batch: list[dict[str, Any]] = []

        def flush() -> None:
            nonlocal evaluated, flagged
            if not batch:
                return
            inputs = transaction_inputs(batch)
            if batch[0]["occurred_at"] < start:  # warm-up: state only
                enricher.apply(inputs)
            else:
                frame = enricher.enrich(inputs)
                keep = np.isin(frame["event_type"], evaluated_types)
                hits = ruleset.evaluate(frame).hits[:, 0] & keep
                evaluated += int(keep.sum())
                flagged += int(hits.sum())
                for i in np.flatnonzero(hits)[: max(0, sample_size - len(sample))].tolist():
                    row = frame.row(i)
                    event = batch[i]
                    sample.append({"event_id": event["event_id"], "type": event["type"],
                                   "occurred_at": event["occurred_at"].isoformat(),
                                   "customer_id": event.get("customer_id"), "amount": float(frame["amount_tenant"][i]),
                                   "reason": compiled.reason(row).text})
            batch.clear()

        with connection.chunked_cursor() as cursor:
            cursor.execute(
                "SELECT event_id, type, occurred_at, customer_id, ip, device_id, payment_method, country, amount, "
                "currency, status, channel, order_id, attributes FROM events WHERE type IN ('payment', 'order', "
                "'return') AND occurred_at >= %s AND occurred_at < %s ORDER BY occurred_at, id", [warm_start, now])
            names = [c.name for c in cursor.description]
            while rows := cursor.fetchmany(5_000):
                for r in rows:
                    event = dict(zip(names, r, strict=True))
                    # A chunk is either all warm-up or all window, so the two are never mixed.
                    if batch and (batch[0]["occurred_at"] < start) != (event["occurred_at"] < start):
                        flush()
                    batch.append(event)
                    if len(batch) >= 5_000:
                        flush()
            flush()
    finally:
        clear_state(client, prefix)
    return {"rule": validated["name"], "days": days, "from": start.isoformat(), "to": now.isoformat(),
            "warmup_days": scoring_config(tenant).dry_run_warmup_days, "evaluated": evaluated,
            "flagged": flagged, "flagged_share": round(flagged / evaluated, 6) if evaluated else 0.0,
            "sample": sample}


# ---------------------------------------------------------------------------------------------
# fraud-check


@dataclass
class FraudCheckOutcome:
    body: dict[str, Any] | None = None
    errors: dict[str, Any] | None = None
    duplicate: bool = False
    timings: dict[str, float] = field(default_factory=dict)


def fraud_check(*, tenant: Any, payload: Any) -> FraudCheckOutcome:
    """Score one payment synchronously with the async path's code, and record it as an event.

    Concurrent checks of a tenant in this process are served as one batch (`fraud_checks`, through
    `pulse.lib.combine`): alone, a check is a batch of one and waits for nothing; under load the
    transaction, the Redis call and the scoring are paid once per batch instead of once per check."""
    started = time.perf_counter()
    if not isinstance(payload, dict):
        return FraudCheckOutcome(errors={"non_field_errors": ["Send one payment as a JSON object."]})
    payload = dict(payload)
    payload.setdefault("type", "payment")
    if payload["type"] != "payment":
        return FraudCheckOutcome(errors={"type": ["fraud-check takes payments only (type 'payment')."]})
    payload.setdefault("timestamp", timezone.now().isoformat())
    outcome = _fraud_check_combiner().submit(tenant.schema_name, payload, tenant)
    outcome.timings = {**outcome.timings, "total": (time.perf_counter() - started) * 1e3}
    return outcome


def fraud_checks(*, tenant: Any, payloads: Sequence[dict[str, Any]]) -> list[FraudCheckOutcome]:
    """Store, enrich and score payments (already shaped by `fraud_check`) as one batch; one outcome
    per payload, in order.

    The payments are stored through `events_ingest` (source "fraud_check"); they are enriched, scored
    and, when flagged, recorded as anomalies INSIDE the transaction that stores them (before_commit),
    so a crash can never leave a stored-but-unscored payment, and the batch consumer skips
    fraud_check batches instead of scoring them a second time. An invalid payment gets its errors
    and leaves the others alone. A repeated event id is answered again (`duplicate: true`) without a
    new anomaly: from this batch's answer when the id repeats within the batch, otherwise from the
    stored event (the enrichment sees the replay and leaves the state alone)."""
    from ingestion.storage import batch_events_load
    from learning.services import scored_events_record

    from .pipeline import anomalies_build, reservoir_push_gathered, score_transactions

    holder: dict[str, Any] = {}

    def score_inside(batch: Any) -> None:
        events = batch.stored_rows if batch.stored_rows is not None else batch_events_load(batch.pk)
        if not events:
            return
        t0 = time.perf_counter()
        scored = score_transactions(tenant=tenant, events=events, exclude_batch_id=batch.pk, wait_seconds=5.0)
        holder["score_ms"] = (time.perf_counter() - t0) * 1e3
        holder["scored"] = scored
        anomalies = anomalies_build(scored, tenant=tenant)
        holder["anomalies"] = anomalies
        anomalies_record(anomalies=anomalies, after_response=True)
        scored_events_record(scored=scored)

    result = events_ingest(tenant=tenant, raw_events=list(payloads), source="fraud_check",
                           before_commit=score_inside, hand_over_after_response=True)
    scored = holder.get("scored")
    rows: dict[str, int] = {}
    related: dict[str, list[str]] = {}
    if scored is not None:
        reservoir_push_gathered(scored, tenant=tenant)
        rows = {str(e["event_id"]): i for i, e in enumerate(scored.events)}
        # The payer's (or its IP's, device's) earlier payments that the flagging signal looked at.
        related = {a.event_ids[0]: a.event_ids[1:] for a in holder["anomalies"]}
    errors = {r["index"]: r["errors"] for r in result.rejected}
    timings = {"score": holder.get("score_ms", 0.0)}
    outcomes: list[FraudCheckOutcome] = []
    answered: set[str] = set()
    for index in range(len(payloads)):
        if index in errors:
            outcomes.append(FraudCheckOutcome(errors=errors[index]))
            continue
        event_id = result.event_ids[index]
        if event_id in rows:
            outcome = FraudCheckOutcome(body={**scored.body(rows[event_id]), "event_id": event_id,
                                              "related_event_ids": related.get(event_id, [])},
                                        timings=dict(timings), duplicate=event_id in answered)
            answered.add(event_id)
            if outcome.duplicate:
                outcome.body["duplicate"] = True
        else:
            outcome = _fraud_check_stored(tenant=tenant, event_id=event_id)
        outcomes.append(outcome)
    return outcomes


def _fraud_check_stored(*, tenant: Any, event_id: str) -> FraudCheckOutcome:
    """The answer for an event id stored before: scored again from the stored event, nothing recorded."""
    from ingestion.models import Event

    from .pipeline import anomalies_build, score_transactions

    stored = list(Event.objects.filter(event_id=event_id).values()[:1])
    if not stored or stored[0]["type"] != "payment":
        return FraudCheckOutcome(errors={"event_id": ["This event id was already used by another event."]})
    t0 = time.perf_counter()
    scored = score_transactions(tenant=tenant, events=stored, wait_seconds=5.0)
    score_ms = (time.perf_counter() - t0) * 1e3
    anomalies = anomalies_build(scored, tenant=tenant)  # not recorded again: only for related_event_ids
    body = {**scored.body(0), "event_id": scored.events[0]["event_id"],
            "related_event_ids": anomalies[0].event_ids[1:] if anomalies else [], "duplicate": True}
    return FraudCheckOutcome(body=body, duplicate=True, timings={"score": score_ms})


def _fraud_checks_isolated(tenant: Any, payloads: Sequence[dict[str, Any]]) -> list[FraudCheckOutcome | Failure]:
    """`fraud_checks` for the combiner: a batch that fails (one payment that trips the database, say)
    is served again one payment at a time, so only the payment at fault fails; its batch-mates are
    answered as if they had come alone. The failed batch's transaction stored nothing; the Redis
    state it enriched sees the retried payments as replays and is not counted twice."""
    from .pipeline import StateNotReady

    try:
        return list(fraud_checks(tenant=tenant, payloads=payloads))
    except StateNotReady:
        raise  # the tenant's state, not a payment: the same answer for every check
    except Exception:
        if len(payloads) == 1:
            raise
        log.warning("a batch of %d fraud-checks failed; serving them one by one", len(payloads), exc_info=True)
    out: list[FraudCheckOutcome | Failure] = []
    for payload in payloads:
        try:
            out.append(fraud_checks(tenant=tenant, payloads=[payload])[0])
        except Exception as exc:  # noqa: BLE001 - handed to that payment's caller, which raises it
            out.append(Failure(exc))
    return out


_combiner: Combiner[dict[str, Any], FraudCheckOutcome] | None = None
_combiner_lock = threading.Lock()


def _fraud_check_combiner() -> Combiner[dict[str, Any], FraudCheckOutcome]:
    global _combiner
    with _combiner_lock:
        if _combiner is None or _combiner.max_batch != settings.PULSE_FRAUD_CHECK_MAX_BATCH:
            _combiner = Combiner(_fraud_checks_isolated, max_batch=settings.PULSE_FRAUD_CHECK_MAX_BATCH)
        return _combiner
