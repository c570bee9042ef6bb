from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from simulator.config import ScenarioConfig, load_config, parse_duration, scenario_names


def test_bundled_scenarios_load() -> None:
    assert {"small", "default", "learning"} <= set(scenario_names())
    for name in ("small", "default", "learning"):
        cfg = load_config(name)
        assert cfg.name == name
        assert cfg.start.tzinfo is not None


def test_default_covers_every_incident_and_fraud_type() -> None:
    cfg = load_config("default")
    types = {i.type for i in cfg.incidents} | {f.type for f in cfg.fraud}
    assert types == {"flash_sale", "checkout_outage", "campaign_break", "tracking_loss", "slow_decline",
                     "price_error", "stockout", "card_testing", "ip_ring", "device_ring",
                     "high_amount_new_customer", "account_takeover", "return_abuse", "compromised_store"}


def test_small_has_the_required_incidents() -> None:
    cfg = load_config("small")
    types = {i.type for i in cfg.incidents} | {f.type for f in cfg.fraud}
    assert {"checkout_outage", "flash_sale", "campaign_break", "card_testing", "ip_ring",
            "high_amount_new_customer", "account_takeover"} <= types


def test_learning_has_delayed_chargebacks() -> None:
    cfg = load_config("learning")
    assert parse_duration(cfg.labels.chargeback_delay) == timedelta(days=7)
    assert any(f.type == "compromised_store" for f in cfg.fraud)


def test_load_by_path_and_overrides(tmp_path) -> None:
    p = tmp_path / "x.yaml"
    p.write_text("name: x\nstart: '2024-01-01T00:00:00+00:00'\ndays: 1\n")
    cfg = load_config(p, seed=9)
    assert cfg.seed == 9 and cfg.days == 1


def test_unknown_scenario() -> None:
    with pytest.raises(FileNotFoundError):
        load_config("nope")


@pytest.mark.parametrize("bad", [
    {"typo_field": 1},
    {"start": "2024-01-01T00:00:00"},  # no offset
    {"incidents": [{"type": "campaign_break", "campaign": "nope", "at": "1h"}]},
    {"incidents": [{"type": "tracking_loss", "channel": "tv", "at": "1h"}]},
    {"incidents": [{"type": "checkout_outage", "at": "5d"}]},  # after the end
    {"incidents": [{"type": "checkout_outage", "at": "banana"}]},
    {"fraud": [{"type": "compromised_store", "store_id": "nope", "at": "1h"}]},
])
def test_invalid_configs_fail(bad: dict) -> None:
    data = {"name": "t", "start": "2024-01-01T00:00:00+00:00", "days": 2, **bad}
    with pytest.raises(ValidationError):
        ScenarioConfig.model_validate(data)


def test_parse_duration() -> None:
    assert parse_duration("1d14h30m") == timedelta(days=1, hours=14, minutes=30)
    assert parse_duration("2w") == timedelta(weeks=2)
    assert parse_duration(90) == timedelta(seconds=90)
    with pytest.raises(ValueError):
        parse_duration("")
