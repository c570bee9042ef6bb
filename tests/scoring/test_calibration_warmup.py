"""A new tenant's calibration is fitted early (at `warmup_scores`, then each doubling), not after an hour."""

from __future__ import annotations

from typing import Any

from ingestion.services import events_ingest
from ingestion.tasks import batch_run
from scoring.models import CalibrationState


def _payments(n: int, start: int) -> list[dict[str, Any]]:
    return [{"event_id": f"w{start + i}", "type": "payment", "timestamp": f"2026-11-20T{(start + i) // 3600 % 24:02d}:"
             f"{(start + i) // 60 % 60:02d}:{(start + i) % 60:02d}Z", "amount": f"{20 + (i * 37) % 400}.00",
             "customer_id": f"c{(start + i) % 700}", "status": "succeeded", "ip": f"10.1.{i % 200}.{i % 250}",
             "device_id": f"d{(start + i) % 650}"} for i in range(n)]


def test_calibration_is_fitted_during_warm_up(tenant_a, redis_client, settings, django_capture_on_commit_callbacks,
                                              monkeypatch) -> None:  # type: ignore[no-untyped-def]
    settings.PULSE_BATCH_CONSUMERS = ["scoring.pipeline.transactions_consume"]
    tenant = tenant_a.tenant
    tenant.config = {"scoring": {"calibration": {"warmup_scores": 200}}}
    tenant.save(update_fields=["config"])
    monkeypatch.setattr("scoring.pipeline._PER_BATCH_SAMPLE", 10_000, raising=False)
    queued: list[int | None] = []
    monkeypatch.setattr("scoring.tasks.calibration_refresh.delay",
                        lambda min_scores=None: queued.append(min_scores))
    for start in (0, 300, 600):
        with django_capture_on_commit_callbacks(execute=True):
            result = events_ingest(tenant=tenant, raw_events=_payments(300, start), source="api")
            batch_run(result.batch_id)
    # 300 scores: first fit; 600: doubled, refit; 900 < 2 × 600: no refit yet
    assert queued == [200, 200]
    from scoring.tasks import calibration_refresh

    fitted = calibration_refresh.apply(kwargs={"min_scores": 200}).get()
    assert fitted and all(n >= 200 for n in fitted.values())
    assert CalibrationState.objects.filter(n_reference__gte=200).exists()


def test_new_customer_amounts_are_fitted_from_the_reservoir_and_used_by_the_scorer(
        tenant_a, redis_client, settings) -> None:  # type: ignore[no-untyped-def]
    from scoring.pipeline import NEW_CUSTOMER_AMOUNTS, calibration_fit, scorer_for

    settings.PULSE_BATCH_CONSUMERS = ["scoring.pipeline.transactions_consume"]
    tenant = tenant_a.tenant
    tenant.config = {"scoring": {"calibration": {"warmup_scores": 200}}}
    tenant.save(update_fields=["config"])
    first_purchases = _payments(300, 0)  # customers c0..c299: all new
    batch_run(events_ingest(tenant=tenant, raw_events=first_purchases, source="api").batch_id)
    assert scorer_for(tenant).enrich_config.new_customer_quantiles == ()  # not fitted yet: the prior decides

    stored = calibration_fit(tenant=tenant, client=redis_client, min_scores=200)
    assert stored[NEW_CUSTOMER_AMOUNTS] == 300
    quantiles = CalibrationState.objects.get(model_version=None, detector=NEW_CUSTOMER_AMOUNTS).calibrator["quantiles"]
    amounts = sorted(float(e["amount"]) for e in first_purchases)
    assert len(quantiles) == 1001 and (quantiles[0], quantiles[-1]) == (amounts[0], amounts[-1])
    assert scorer_for(tenant).enrich_config.new_customer_quantiles == tuple(quantiles)
