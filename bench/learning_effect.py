"""Does learning make a measurable difference? The simulator's `learning` scenario: a partner store is
compromised from day 7 for three weeks, its fraudulent payments drawn from the same amounts,
customers and velocity as honest ones; chargebacks arrive 7 days after each payment.

    python bench/learning_effect.py [--seed 42] [--scale 1] [--cutoff-day 21] [--redis redis://127.0.0.1:6379/11] [--record]

`--scale K` multiplies the scenario's sessions per day and customers by K (a bigger shop, same
fraud share): at scale 1 the shop has ~90 payments a day and ~20 chargebacks are known at the
cutoff, below the default minimum for a supervised model (30), and the retraining says so.

1. Every payment/order/return goes through ingestion validation and the live enrichment code (Redis,
   throwaway prefix), like the scoring path.
2. Before: the model in use is the committed global model v0 (percentile calibration fitted on this
   tenant's scores before the cutoff, as the calibration task would), the default rules, the default
   consensus.
3. Retraining at the cutoff (day 21) with `learning.services.train_challenger`, the code the
   retraining job runs: only chargebacks known at the cutoff (events up to day 14), unlabelled events
   younger than the 7-day maturity left out. Champion/challenger verdict as the job computes it.
4. Recalibration at the cutoff with `learning.recalibrate` (default policy: precision 80 %, minimum
   labels, else 50 alerts/day): labels = chargebacks known at the cutoff + analyst feedback on the
   payments each model flagged before the cutoff (true/false positive known one day later).
5. Evaluation on the payments AFTER the cutoff (days 21-35, never seen in training), against the
   scenario's ground truth: recall and average precision of the compromised-store fraud, false
   alarms (flagged legit payments) per day.

Prints one JSON line (bench/_common.emit). Nothing here is tuned to the scenario: the learning
settings are the tenant defaults (learning.config).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pulse.settings.local")


def _enrich(sim: Any, redis_url: str) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    import redis as redis_lib

    from ingestion.schemas import validate_batch
    from scoring.enrich import EnrichConfig, Enricher, clear_state
    from scoring.pipeline import is_transaction, transaction_inputs

    tz, currency = sim.config.timezone, sim.config.currency
    now = sim.end + timedelta(days=1)
    client = redis_lib.Redis.from_url(redis_url)
    prefix = f"bench.learning.{uuid.uuid4().hex[:10]}"
    enricher = Enricher(client, prefix, EnrichConfig(timezone=tz, currency=currency))
    frames, events = [], []
    try:
        for chunk in sim.events.batches(20_000):
            checked = validate_batch([e for e in chunk if is_transaction(e)], tenant_tz=tz, tenant_currency=currency,
                                     now=now)
            valid = [e for _, e in checked.valid]
            if valid:
                frames.append(enricher.enrich(transaction_inputs(valid)))
                events += valid
    finally:
        clear_state(client, prefix)
    frame = {k: np.concatenate([f[k] for f in frames]) for k in frames[0]}
    frame["store_id"] = np.array([e.get("store_id") or "" for e in events], dtype=object)
    return frame, events


def _take(frame: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in frame.items()}


def main() -> None:
    import django

    django.setup()
    from bench._common import emit
    from learning.config import LearningConfig
    from learning.recalibrate import RecalibrationPolicy, recalibrate
    from learning.services import LearningError, challenger_consensus, train_challenger
    from learning.supervised import average_precision, champion_challenger, evaluate
    from scoring.calibration import PercentileCalibrator
    from scoring.consensus import ConsensusConfig, ScoringEngine
    from scoring.detectors.training import load_trained_model
    from scoring.registry import GLOBAL_NAME, GLOBAL_STORE
    from scoring.rules import RuleSet
    from scoring.rules.defaults import default_rules
    from simulator import generate, load_config

    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--cutoff-day", type=float, default=21.0)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/11"))
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()

    started = time.monotonic()
    base = load_config("learning")
    overrides: dict[str, Any] = {}
    if args.scale != 1.0:
        overrides = {"traffic": {**base.traffic.model_dump(), "sessions_per_day": base.traffic.sessions_per_day * args.scale},
                     "customers": {**base.customers.model_dump(),
                                   "initial_customers": int(base.customers.initial_customers * args.scale)}}
    sim = generate(load_config("learning", **overrides), seed=args.seed)
    frame, events = _enrich(sim, args.redis)
    n = len(events)
    ts = frame["ts_ms"] / 1000.0
    cutoff = sim.start.timestamp() + args.cutoff_day * 86_400
    ids = np.array([e["event_id"] for e in events], dtype=object)
    is_payment = np.array([e["type"] == "payment" for e in events])
    index = {e: i for i, e in enumerate(ids.tolist())}
    compromised = np.zeros(n, bool)
    fraud = np.zeros(n, bool)
    y_all = np.full(n, -1, dtype=np.int64)
    known_at = np.full(n, np.nan)
    for lab in sim.event_labels:  # the chargeback feed
        i = index.get(lab.event_id)
        if i is None:
            continue
        y_all[i] = 1 if lab.label == "fraud" else 0
        known_at[i] = lab.known_at.timestamp()
        fraud[i] |= lab.label == "fraud"
        compromised[i] |= lab.incident_id == "compromised-partner"
    fraud |= np.array([sim.truth.get(e) == "fraud" for e in ids.tolist()])
    enriched_s = time.monotonic() - started

    consensus = ConsensusConfig()
    rules = RuleSet(default_rules())
    before_cut = np.flatnonzero(ts < cutoff)

    # -- the model in use: global v0, tenant percentile calibration from scores before the cutoff
    g = load_trained_model(GLOBAL_STORE / GLOBAL_NAME)
    pre = _take(frame, before_cut)
    champ_cal = {d.name: PercentileCalibrator.fit(d.score(pre).raw) for d in g.detectors}
    champion = ScoringEngine(g.detectors, champ_cal, rules, consensus)

    # -- retraining at the cutoff, as the retraining job does it
    cfg = LearningConfig()
    t0 = time.monotonic()
    try:
        out = train_challenger(frame=frame, ts=ts, y_all=y_all, known_at=known_at, cutoff=cutoff, cfg=cfg)
    except LearningError as exc:
        out = None
        refused = str(exc)
    train_s = time.monotonic() - t0
    threshold = consensus.review_threshold
    training: dict[str, Any]
    if out is not None:
        challenger = ScoringEngine(out["model"].detectors, out["model"].calibrators, rules,
                                   challenger_consensus(consensus, out["model"], cfg))
        hold = out["hold_idx"]
        risk_hold_old = champion.score(_take(frame, hold)).risk
        k = max(int((risk_hold_old >= threshold).sum()), 1)
        ev_hold_old = evaluate(out["y_hold"], risk_hold_old, threshold, k=k)
        ev_hold_new = evaluate(out["y_hold"], challenger.score(_take(frame, hold)).risk, threshold, k=k)
        verdict = champion_challenger(ev_hold_new, ev_hold_old, tolerance=cfg.retraining.tolerance,
                                      min_positives=cfg.retraining.min_holdout_positives)
        training = {**out["info"], "verdict": verdict.reason, "promote": verdict.promote,
                    "holdout_champion": ev_hold_old.as_dict(), "holdout_challenger": ev_hold_new.as_dict()}
    else:
        training = {"refused": refused}

    # -- evaluation population: payments after the cutoff, other fraud types left out
    after = np.flatnonzero((ts >= cutoff) & is_payment & ~(fraud & ~compromised))
    days_after = (ts[after].max() - cutoff) / 86_400.0
    past_pay = np.flatnonzero((ts < cutoff) & is_payment)
    rc = cfg.recalibration
    policy = RecalibrationPolicy(mode=rc.mode, target=rc.target, min_labels=rc.min_labels,
                                 min_positives=rc.min_positives, min_negatives=rc.min_negatives,
                                 min_alerts_labelled=rc.min_alerts_labelled, alerts_per_day=rc.alerts_per_day,
                                 min_threshold=rc.min_threshold,
                                 max_threshold=min(rc.max_threshold, consensus.block_threshold - 1e-3),
                                 min_change=rc.min_change)

    def figures(engine: ScoringEngine) -> dict[str, Any]:
        risk_after = engine.score(_take(frame, after)).risk
        y = compromised[after]
        legit = ~fraud[after]
        # recalibration at the cutoff from the labels known then
        risk_past = engine.score(_take(frame, past_pay)).risk
        flagged_past = risk_past >= threshold
        feedback_known = ts[past_pay] + 86_400 <= cutoff
        cb_known = np.isfinite(known_at[past_pay]) & (known_at[past_pay] <= cutoff)
        labelled = (flagged_past & feedback_known) | cb_known
        lab_y = fraud[past_pay][labelled].astype(np.int8)
        recal = recalibrate(current=threshold, scores=risk_past,
                            days=(cutoff - ts[past_pay].min()) / 86_400.0,
                            labelled_scores=risk_past[labelled], labels=lab_y, policy=policy)

        def at(t: float) -> dict[str, Any]:
            flagged = risk_after >= t
            return {"threshold": round(t, 4), "recall": round(float((flagged & y).sum() / max(y.sum(), 1)), 4),
                    "alerts_per_day": round(float(flagged.sum() / days_after), 1),
                    "false_alarms_per_day": round(float((flagged & legit).sum() / days_after), 1),
                    "precision": round(float((flagged & ~legit).sum() / max(flagged.sum(), 1)), 4)}

        return {"average_precision": round(average_precision(y, risk_after) or 0.0, 4),
                "default_threshold": at(threshold),
                "recalibrated": {**at(recal.new_threshold), "mode": recal.mode, "labels": recal.n_labels,
                                 "labelled_frauds": recal.n_positives}}

    before = figures(champion)
    after_fig = figures(challenger) if out is not None else None
    emit("learning_effect", {
        "scenario": "learning", "seed": args.seed, "cutoff_day": args.cutoff_day,
        "population": f"{after.size} payments after the cutoff ({int(compromised[after].sum())} compromised-store "
                      f"frauds), {days_after:.1f} days",
        "base_rate": round(float(compromised[after].mean()), 4),
        "before_retraining": before, "after_retraining": after_fig,
        "scale": args.scale, "training": training,
        "enrich_s": round(enriched_s, 1), "train_s": round(train_s, 1),
    })


if __name__ == "__main__":
    main()
