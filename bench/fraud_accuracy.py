"""Accuracy of the transaction scoring (default configuration) on the simulator's labelled fraud.

    DATABASE_URL=... REDIS_URL=redis://127.0.0.1:6379/8 .venv/bin/python bench/fraud_accuracy.py \
        [--scenario default] [--seed 42] [--batch 200] [--no-calibration]

The simulator scenario's events go, in time order and in batches, through ingestion's
`validate_batch` and then `scoring.pipeline.score_transactions` + `anomalies_build` — the code the
batch consumer runs — with the committed global model (version 0), the default rule set and the
default ScoringConfig. Without a database: the scorer is assembled from the same parts the
consumer loads (`scorer_assemble`). Redis state lives under a throwaway prefix, deleted at the end.

Calibration runs as in production unless --no-calibration: the consumer feeds the reservoirs, and
once per hour of data time (the beat task's cadence) the percentile calibrators, the amount
prior and the new-customer amount quantiles are refitted from them when they hold `calibration.min_scores` values.

Ground truth: `Scenario.truth` labels payments and returns; an order inherits the label of its
order's payment (the same purchase). Figures: per pattern, event recall and incident recall
(incident = at least one of its events flagged); overall precision; and precision per "top
reason" (the first reason of a flagged event: which signal raised it). Two definitions of
"flagged", each with its own precision and recall: (a) the event's own decision (an anomaly
triggered by it), and (b) "linked": any anomaly lists the event in `event_ids` (an anomaly about a
customer/IP/device lists the entity's earlier events in the signal's window), so a legit event
linked into an anomaly counts as a false positive. Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pulse.settings.local")

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.conf import settings  # noqa: E402

from ingestion.schemas import validate_batch  # noqa: E402
from scoring import registry  # noqa: E402
from scoring.config import ScoringConfig  # noqa: E402
from scoring.enrich import clear_state, tenant_prefix  # noqa: E402
from scoring.pipeline import (  # noqa: E402
    MARKER_KEY,
    EngineKey,
    anomalies_build,
    calibrations_from_reservoirs,
    is_transaction,
    new_customer_quantiles_from_reservoir,
    reservoir_push,
    score_transactions,
    scorer_assemble,
)
from scoring.rules import default_rules  # noqa: E402
from scoring.services import tenant_default_rules  # noqa: E402
from simulator import generate, load_config  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--seed", type=int, default=42, help="simulation seed (the global model used seed 7)")
    ap.add_argument("--batch", type=int, default=200, help="transaction events per consumer batch")
    ap.add_argument("--no-calibration", action="store_true", help="keep the global calibrators throughout")
    ap.add_argument("--brief-rules", action="store_true",
                    help="the brief's six rules literally (scoring.rules.default_rules), not the tenant defaults")
    ap.add_argument("--redis", default=settings.REDIS_URL)
    args = ap.parse_args()

    sim = generate(load_config(args.scenario), seed=args.seed)
    tenant = SimpleNamespace(schema_name=f"bench_acc_{uuid.uuid4().hex[:8]}", timezone=sim.config.timezone,
                             currency=sim.config.currency, config={})
    config = ScoringConfig()
    meta = registry.global_meta()
    model = registry.load_model(registry.GLOBAL_STORE / registry.GLOBAL_NAME, meta["sha256"])
    rules = (default_rules(**config.rules.brief_defaults()) if args.brief_rules
             else tenant_default_rules(config.rules))
    key = EngineKey(tenant.schema_name, 0, meta["sha256"], 0, "", config.fingerprint())
    scorer = scorer_assemble(tenant=tenant, key=key, config=config, model=model, rules=rules)
    client = redis.Redis.from_url(args.redis)
    client.set(tenant_prefix(tenant.schema_name) + MARKER_KEY, "bench")  # nothing to rebuild: a fresh shop

    now = sim.end + timedelta(days=1)
    decisions: dict[str, str] = {}
    top_reason: dict[str, str] = {}
    linked_reason: dict[str, str] = {}  # every event some anomaly lists in event_ids -> that anomaly's top reason
    linked_ids = 0
    order_of: dict[str, str] = {}
    types: dict[str, str] = {}
    next_fit = None
    refits = 0
    calibrated_from: dict[str, Any] = {}
    started = time.perf_counter()
    n_tx = 0
    try:
        pending: list[dict[str, Any]] = []

        def run(batch: list[dict[str, Any]]) -> None:
            nonlocal scorer, next_fit, refits, n_tx, linked_ids
            checked = validate_batch(batch, tenant_tz=tenant.timezone, tenant_currency=tenant.currency, now=now)
            assert not checked.rejected, checked.rejected[:3]
            events = [e for _, e in checked.valid]
            scored = score_transactions(tenant=tenant, events=events, client=client, scorer=scorer)
            n_tx += len(events)
            for e in events:
                types[e["event_id"]] = e["type"]
                if e.get("order_id"):
                    order_of[e["event_id"]] = e["order_id"]
            for anomaly in anomalies_build(scored, tenant=tenant):
                eid = anomaly.event_ids[0]
                decisions[eid] = anomaly.decision
                top_reason[eid] = anomaly.reasons[0]["detector"] if anomaly.reasons else "?"
                linked_ids += len(anomaly.event_ids) - 1
                for linked in anomaly.event_ids:
                    linked_reason.setdefault(linked, top_reason[eid])
            if args.no_calibration:
                return
            reservoir_push(scored, client, tenant=tenant)
            t = events[-1]["occurred_at"]
            if next_fit is None:
                next_fit = t + timedelta(hours=1)
            if t >= next_fit:  # the hourly beat task
                next_fit = t + timedelta(hours=1)
                fitted, prior = calibrations_from_reservoirs(
                    client=client, tenant=tenant, model_version=0, detectors=[d.name for d in model.detectors],
                    min_scores=config.calibration.min_scores)
                new = new_customer_quantiles_from_reservoir(client=client, tenant=tenant,
                                                            min_scores=config.calibration.min_scores)
                if fitted or prior or new:
                    refits += 1
                    calibrated_from.setdefault("first_refit_at", t.isoformat())
                    scorer = scorer_assemble(tenant=tenant, key=key, config=config, model=model, rules=rules,
                                             calibrations=fitted, prior=prior[:2] if prior else None,
                                             new_customer_quantiles=new[0] if new else None)

        for chunk in sim.events.batches(5_000):
            for e in chunk:
                if is_transaction(e):
                    pending.append(e)
                    if len(pending) >= args.batch:
                        run(pending)
                        pending = []
        if pending:
            run(pending)
    finally:
        clear_state(client, tenant.schema_name)
    elapsed = time.perf_counter() - started

    # Ground truth: payments/returns from the simulator; orders inherit their payment's label.
    incident_of = {lab.event_id: lab.incident_id for lab in sim.event_labels}
    pattern_of_incident = {lab.incident_id: lab.type for lab in sim.labels if lab.kind == "fraud"}
    truth = dict(sim.truth)
    incident_by_event = dict(incident_of)
    order_label: dict[str, tuple[str, str | None]] = {}
    for eid, label in sim.truth.items():
        if types.get(eid) == "payment" and eid in order_of:
            prev = order_label.get(order_of[eid])
            if prev is None or label == "fraud":
                order_label[order_of[eid]] = (label, incident_of.get(eid))
    for eid, kind in types.items():
        if kind == "order" and order_of.get(eid) in order_label:
            truth[eid], inc = order_label[order_of[eid]]
            if inc:
                incident_by_event[eid] = inc

    def pattern(incident: str) -> str:
        if incident in pattern_of_incident:
            return pattern_of_incident[incident]
        base = incident.split(":")[0]
        return next((t for i, t in pattern_of_incident.items() if i.split(":")[0] == base), "?")

    def figures(scope: set[str], flags: dict[str, str]) -> dict[str, Any]:
        """`flags`: flagged event -> top reason (of its own anomaly, or of the anomaly that links it)."""
        flagged = {e for e in flags if e in scope}
        fraud = {e for e in scope if truth.get(e) == "fraud"}
        tp = len(flagged & fraud)
        per_pattern: dict[str, dict[str, Any]] = {}
        by_pattern: dict[str, set[str]] = defaultdict(set)
        by_incident: dict[str, set[str]] = defaultdict(set)
        for e in fraud:
            inc = incident_by_event.get(e) or "?"
            by_pattern[pattern(inc)].add(e)
            by_incident[inc].add(e)
        for pattern_name, ids in sorted(by_pattern.items()):
            incidents = [i for i in by_incident if pattern(i) == pattern_name]
            per_pattern[pattern_name] = {
                "events": len(ids), "event_recall": round(len(ids & flagged) / len(ids), 3),
                "incidents": len(incidents),
                "incident_recall": round(sum(bool(by_incident[i] & flagged) for i in incidents) / max(1, len(incidents)), 3)}
        reasons = Counter(flags[e] for e in flagged)
        reason_tp = Counter(flags[e] for e in flagged & fraud)
        return {"evaluated": len(scope), "fraud_events": len(fraud), "flagged": len(flagged), "true_positives": tp,
                "precision": round(tp / len(flagged), 3) if flagged else None,
                "recall": round(tp / len(fraud), 3) if fraud else None,
                "false_positives_per_1000": round(1000 * (len(flagged) - tp) / max(1, len(scope)), 2),
                "per_pattern": per_pattern,
                "precision_by_top_reason": {r: {"flagged": n, "precision": round(reason_tp[r] / n, 3)}
                                            for r, n in reasons.most_common()}}

    labelled = {e for e in sim.truth if e in types}
    out = {
        "bench": "fraud_accuracy", "scenario": args.scenario, "seed": args.seed, "model": "global v0",
        "model_sha256": meta["sha256"][:12], "rules": "brief (literal)" if args.brief_rules else "tenant defaults", "calibration": "off" if args.no_calibration else "hourly from reservoirs",
        "calibration_refits": refits, **calibrated_from, "transactions": n_tx, "seconds": round(elapsed, 1),
        # (a) an event is flagged when its own decision is REVIEW/BLOCK (an anomaly triggered by it);
        # (b) "linked": when any anomaly lists it in event_ids (its own, or an anomaly about its
        # customer/IP/device that links the entity's earlier events): a legit event linked is a false positive.
        "payments_and_returns": figures(labelled, top_reason),
        "all_transactions": figures(set(types), top_reason),
        "linked": {"payments_and_returns": figures(labelled, linked_reason),
                   "all_transactions": figures(set(types), linked_reason),
                   "linked_ids": linked_ids},
        "decisions": dict(Counter(decisions.values())),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
