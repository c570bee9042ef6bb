from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack
import numpy as np
import pytest

from scoring.enrich import EnrichConfig, Enricher, clear_state, hour_of_week, rebuild_state
from scoring.enrich.synthetic import payments
from scoring.features import FEATURE_NAMES, NUMERIC_FEATURES
from tests.scoring.redis_fixture import redis_db_fixture  # noqa: F401  (provides the `rds` fixture)

T0 = datetime(2024, 5, 6, 10, 0, tzinfo=UTC)  # Monday 10:00 UTC


def pay(i: int, minutes: float, **kw: Any) -> dict[str, Any]:
    ev = {"event_id": f"e{i}", "type": "payment", "timestamp": T0 + timedelta(minutes=minutes),
          "customer_id": "c1", "ip": "1.1.1.1", "device_id": "d1", "payment_method": "card1",
          "country": "US", "amount": 20.0, "currency": "USD", "status": "succeeded"}
    ev.update(kw)
    return ev


def assert_frames_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    for name in FEATURE_NAMES:
        if name in NUMERIC_FEATURES:
            np.testing.assert_array_equal(np.asarray(a[name], float), np.asarray(b[name], float), err_msg=name)
        else:
            assert list(a[name]) == list(b[name]), name


def test_card_testing_burst_in_one_batch_sees_previous_events(rds):
    events = [pay(i, i * 0.5, payment_method=f"card{i}", amount=1.0 + i, status="failed") for i in range(5)]
    f = Enricher(rds, "acme").enrich(events)
    # the 5th attempt sees the 4 before it (counts include the current event)
    assert f["cust_count_1h"].tolist() == [1, 2, 3, 4, 5]
    assert f["cust_distinct_payment_methods_24h"].tolist() == [1, 2, 3, 4, 5]
    assert f["cust_failed_streak"].tolist() == [0, 1, 2, 3, 4]
    assert f["device_failed_streak"].tolist() == [0, 1, 2, 3, 4]
    assert f["cust_amount_1h"][-1] == pytest.approx(1 + 2 + 3 + 4 + 5)
    assert f["ip_count_1h"][-1] == 5 and f["device_count_24h"][-1] == 5


def test_success_resets_streak_and_sliding_windows(rds):
    en = Enricher(rds, "acme")
    f = en.enrich([pay(0, 0, status="failed"), pay(1, 1, status="failed"), pay(2, 2),
                   pay(3, 3, status="failed"), pay(4, 120, amount=30.0), pay(5, 60 * 27, amount=40.0)])
    assert f["cust_failed_streak"].tolist() == [0, 1, 2, 0, 1, 0]
    assert f["cust_count_1h"].tolist() == [1, 2, 3, 4, 1, 1]  # 2 h later the hour is fresh
    assert f["cust_count_24h"].tolist() == [1, 2, 3, 4, 5, 1]  # 27 h later only the day is fresh
    assert f["cust_amount_24h"][4] == pytest.approx(20 * 4 + 30)


def test_distinct_customers_on_ip_and_device_and_new_flags(rds):
    en = Enricher(rds, "acme")
    f = en.enrich([
        pay(0, 0, customer_id="a"), pay(1, 1, customer_id="b"), pay(2, 2, customer_id="c"),
        pay(3, 3, customer_id="a"),  # same customer again: still 3 distinct
        pay(4, 4, customer_id="a", device_id="d2", ip="2.2.2.2", country="FR"),
    ])
    assert f["ip_distinct_customers_24h"].tolist() == [1, 2, 3, 3, 1]
    assert f["device_distinct_customers_24h"].tolist() == [1, 2, 3, 3, 1]
    assert f["cust_distinct_devices_24h"].tolist() == [1, 1, 1, 1, 2]
    # a first-time customer is "new customer", not "new device"
    assert f["new_device"].tolist() == [0, 0, 0, 0, 1]
    assert f["new_ip"].tolist() == [0, 0, 0, 0, 1]
    assert f["new_country"].tolist() == [0, 0, 0, 0, 1]
    assert f["cust_tenure_s"].tolist() == [0, 0, 0, 180.0, 240.0]


def test_the_order_of_a_purchase_does_not_make_its_payments_place_familiar(rds):
    """A known customer's order (country only, as shops send orders) comes just before its payment
    from a new device, IP and country: the order's sighting of the country must not make it known
    for the payment of the same purchase. The next purchase from there is familiar; a replayed
    order changes nothing; a first-time customer's payment after its own order stays "new customer",
    not "new device"."""
    en = Enricher(rds, "acme")
    en.enrich([pay(0, 0, order_id="h1", country="FR"), pay(1, 60, order_id="h2", country="FR")])
    order = {**pay(2, 120, country="RO", ip=None, device_id=None), "type": "order", "status": None,
             "order_id": "ato"}
    f = en.enrich([order, pay(3, 121, order_id="ato", country="RO", ip="6.6.6.6", device_id="evil")])
    assert f["new_country"].tolist() == [1, 1]
    assert (f["new_device"][1], f["new_ip"][1]) == (1, 1)
    again = en.enrich([order, pay(4, 122, order_id="ato", country="RO", ip="6.6.6.6", device_id="evil",
                                  event_id="e3-retry")])
    assert again["new_country"][1] == 1  # the order was a replay: still this purchase's new place
    later = en.enrich([pay(5, 180, order_id="next", country="RO", ip="6.6.6.6", device_id="evil")])
    assert (later["new_country"][0], later["new_device"][0], later["new_ip"][0]) == (0, 0, 0)
    first = en.enrich([{**pay(6, 200, customer_id="newbie"), "type": "order", "status": None, "order_id": "n1"},
                       pay(7, 201, customer_id="newbie", order_id="n1", device_id="dn", ip="7.7.7.7")])
    assert first["is_new_customer"].tolist() == [1, 1]
    assert first["new_device"].tolist() == [0, 0] and first["new_country"].tolist() == [0, 0]


def test_new_customer_flag_guest_and_tenure(rds):
    cfg = EnrichConfig(new_customer_seconds=3600)
    f = Enricher(rds, "acme", cfg).enrich([pay(0, 0), pay(1, 30), pay(2, 90), pay(3, 91, customer_id=None)])
    assert f["is_new_customer"].tolist() == [1, 1, 0, 1]  # the guest has no history: new
    assert f["cust_count_1h"][3] == 0 and f["ip_count_1h"][3] == 2  # events at 90 and 91 min


def ret(i: int, minutes: float, order: str | None, **kw: Any) -> dict[str, Any]:
    ev = {"event_id": f"r{i}", "type": "return", "timestamp": T0 + timedelta(minutes=minutes), "customer_id": "c1",
          "order_id": order, "amount": 20.0, "currency": "USD"}
    ev.update(kw)
    return ev


def test_return_rate_counts_orders_and_returned_orders(rds):
    en = Enricher(rds, "acme")
    f = en.enrich([
        {**pay(0, 0), "type": "order", "status": None, "order_id": "o1"},
        pay(1, 1, order_id="o1"),  # the payment of o1: the same order, not a second one
        pay(2, 2, order_id="o2", status="failed"),  # a failed attempt buys nothing
        pay(3, 3, order_id="o2"),
        pay(4, 4, order_id="o3"),
    ])
    assert f["cust_orders_window"].tolist() == [1, 1, 1, 2, 3]
    assert f["cust_count_1h"][-1] == 4  # velocity still counts payments
    r = en.enrich([ret(0, 60, "o1"), ret(1, 61, "o1"), ret(2, 62, "o2"), ret(3, 63, None)])
    # two lines of o1 are one returned order; a return without an order id stands for its own order
    assert r["cust_returns_window"].tolist() == [1, 2, 3, 4]
    assert r["cust_returned_orders_window"].tolist() == [1, 1, 2, 3]
    assert r["cust_orders_window"].tolist() == [3, 3, 3, 3]
    assert r["cust_return_rate"].tolist() == pytest.approx([1 / 3, 1 / 3, 2 / 3, 1.0])
    assert r["applied"].tolist() == [1, 1, 1, 1]
    # a replayed return changes nothing
    again = en.enrich([ret(2, 62, "o2")])
    assert again["applied"].tolist() == [0]
    # (counted as of its own time: r3, a minute later, is not in its window)
    assert again["cust_returns_window"][0] == 3 and again["cust_returned_orders_window"][0] == 2
    # purchases see the returns too
    nxt = en.enrich([pay(5, 70, order_id="o4")])
    assert nxt["cust_orders_window"][0] == 4 and nxt["cust_returned_orders_window"][0] == 3
    assert nxt["cust_return_rate"][0] == pytest.approx(3 / 4)
    assert nxt["amount_robust_z"][0] == pytest.approx(0.0, abs=2.0) and r["amount_robust_z"].tolist() == [0.0] * 4


def test_return_window_forgets_old_orders_and_returns(rds):
    en = Enricher(rds, "acme", EnrichConfig(return_window_seconds=10 * 86_400))
    day = 24 * 60
    en.enrich([pay(0, 0, order_id="o1"), pay(1, 1, order_id="o2"), ret(0, 60, "o1"), ret(1, 61, "o2")])
    f = en.enrich([pay(2, 9 * day, order_id="o3"), ret(2, 9 * day + 5, "o3"), pay(3, 11 * day, order_id="o4")])
    assert f["cust_orders_window"].tolist() == [3, 3, 2]  # at day 11, o1 and o2 (day 0) are out
    assert f["cust_returned_orders_window"].tolist() == [2, 3, 1]
    assert f["cust_return_rate"][2] == pytest.approx(1 / 2)
    # state bounded: what left the window is dropped from the customer's record, which expires
    record = msgpack.unpackb(rds.get("pulse:{acme}:c:c1"))
    def tag(order: str) -> str:
        return hashlib.sha1(order.encode()).hexdigest()[:12]

    assert sorted(record["r"]) == sorted([f"o{tag('o3')}", f"o{tag('o4')}", f"r{tag('o3')}", "xr2"])
    assert rds.pttl("pulse:{acme}:c:c1") > 0


def test_return_without_orders_in_the_window_has_rate_zero():
    from scoring.enrich import return_rate

    assert return_rate(np.array([0, 4, 2, 5]), np.array([1, 2, 3, 0])).tolist() == [0.0, 0.5, 1.0, 0.0]


def test_the_payment_of_an_order_is_not_history_for_itself(rds):
    en = Enricher(rds, "acme")
    f = en.enrich([{**pay(0, 0, amount=900.0), "type": "order", "status": None, "order_id": "big"},
                   pay(1, 1, amount=900.0, order_id="big")])
    # a first purchase: the order and its payment are both judged against the tenant prior alone
    assert f["cust_history_n"].tolist() == [0, 0]
    assert f["amount_robust_z"][1] == pytest.approx(f["amount_robust_z"][0])
    g = en.enrich([pay(2, 5, amount=20.0, order_id="next")])
    assert g["cust_history_n"][0] == 1  # later purchases see it once: an order and its payment are one purchase


def test_amount_percentile_in_the_shop_table_and_from_the_prior():
    import math

    from scoring.enrich import amount_percentile, new_customer_quantiles

    table = new_customer_quantiles(np.arange(1, 1001, dtype=float), points=1000)  # 1..1000
    assert len(table) == 1001 and table[0] == 1.0 and table[-1] == 1000.0
    p = amount_percentile(np.array([0.5, 1.0, 500.5, 999.0, 1000.0, 5000.0]), table, 0.0, 1.0)
    assert p.tolist() == pytest.approx([0.0, 0.0, 0.5, 0.998, 1.0, 1.0], abs=1e-3)
    # ties: a value half the sample shares sits in the middle of its range
    tied = new_customer_quantiles(np.array([10.0] * 50 + [20.0] * 50), points=100)
    assert amount_percentile(np.array([10.0]), tied, 0.0, 1.0)[0] == pytest.approx(0.25, abs=0.02)
    # no table: the log-normal prior's CDF (median exp(m) - 1 is the 50th percentile)
    prior = amount_percentile(np.array([math.expm1(3.0), math.expm1(3.0 + 2 * 0.5)]), (), 3.0, 0.5)
    assert prior.tolist() == pytest.approx([0.5, 0.97725], abs=1e-4)
    assert new_customer_quantiles([]) == ()


def test_new_customer_percentile_feature_uses_the_configured_table(rds):
    table = tuple(float(v) for v in np.linspace(10.0, 110.0, 101))  # quantiles of a uniform 10..110
    en = Enricher(rds, "acme", EnrichConfig(new_customer_quantiles=table))
    f = en.enrich([pay(0, 0, amount=60.0), pay(1, 1, amount=500.0, customer_id="c2"),
                   ret(0, 2, "x", amount=500.0)])
    assert f["amount_new_customer_percentile"].tolist() == pytest.approx([0.5, 1.0, 0.0])


def test_currency_conversion_and_unknown_currency(rds):
    cfg = EnrichConfig(currency="EUR", fx_rates={"USD": 0.5})
    en = Enricher(rds, "acme", cfg)
    f = en.enrich([pay(0, 0, amount=100.0, currency="USD"), pay(1, 1, amount=10.0, currency="EUR"),
                   pay(2, 2, amount=10.0, currency=None)])
    assert f["amount_tenant"].tolist() == [50.0, 10.0, 10.0]
    assert f["cust_amount_1h"][-1] == pytest.approx(70.0)
    with pytest.raises(ValueError, match="GBP"):
        en.enrich([pay(3, 3, currency="GBP")])


def test_amount_robust_z_against_own_history_with_shrinkage(rds):
    en = Enricher(rds, "acme")
    history = [pay(i, i * 60, amount=float(a)) for i, a in enumerate([40, 45, 50, 55, 60, 42, 48, 52, 58, 50])]
    en.enrich(history)
    f = en.enrich([pay(20, 2000, amount=50.0), pay(21, 2001, amount=900.0)])
    assert abs(f["amount_robust_z"][0]) < 1.0
    assert f["amount_robust_z"][1] > 5.0
    assert f["cust_history_n"].tolist() == [10, 11]
    # no history: the tenant prior decides (default prior median 50)
    g = en.enrich([pay(30, 0, customer_id="new", amount=50.0)])
    assert abs(g["amount_robust_z"][0]) < 1e-6


def test_hour_of_week_in_tenant_zone_single_and_batch_agree():
    ts = (np.datetime64("2024-03-31T00:30") - np.datetime64("1970-01-01T00:00")).astype("timedelta64[ms]").astype(np.int64)
    grid = ts + np.arange(100, dtype=np.int64) * 1_800_000  # crosses the EU DST change
    batch = hour_of_week(grid, "Europe/Paris")
    single = np.concatenate([hour_of_week(grid[i:i + 1], "Europe/Paris") for i in range(len(grid))])
    np.testing.assert_array_equal(batch, single)
    assert batch[0] == 6 * 24 + 1  # Sunday 01:30 in Paris
    assert hour_of_week(np.array([0]), "UTC")[0] == 3 * 24  # 1970-01-01 was a Thursday


def test_batch_and_single_event_paths_give_identical_features(rds):
    events = payments(400, seed=3, fraud_rate=0.05, hours=6)
    batch = Enricher(rds, "acme", EnrichConfig(chunk_size=64)).enrich(events)  # several script calls
    rds.flushdb()
    en = Enricher(rds, "acme")
    rows = [en.enrich_one(e) for e in events]
    single = {k: np.array([r[k] for r in rows]) for k in FEATURE_NAMES}
    assert_frames_equal(batch, single)
    assert batch["cust_count_1h"].max() >= 6  # the card-testing bursts are in there


def test_script_calls_are_short_while_synchronous_checks_are_served(rds, monkeypatch):
    """A batch goes to Redis in calls of `chunk_size` events, in one pipeline; while fraud-checks are
    being served (the key they set), one call at a time of about `call_budget_ms` each, so no call
    holds Redis for long. The features are those of one call either way."""
    from scoring.enrich import engine, sync_traffic_mark

    events = payments(3_000, seed=5, fraud_rate=0.02, hours=12)
    whole = Enricher(rds, "acme", EnrichConfig(chunk_size=5_000)).enrich(events)
    sizes: list[int] = []
    pipelines: list[object] = []
    real_evalsha, real_pipeline = engine._evalsha, rds.pipeline

    def one_call(client, source, sha, keys, args):  # type: ignore[no-untyped-def]
        sizes.append(int(args[0]))
        return real_evalsha(client, source, sha, keys, args)

    monkeypatch.setattr(engine, "SYNC_TRAFFIC_RECHECK_SECONDS", 0.0)  # look the key up every time
    monkeypatch.setattr(engine, "_evalsha", one_call)
    monkeypatch.setattr(rds, "pipeline", lambda **kw: pipelines.append(kw) or real_pipeline(**kw))
    config = EnrichConfig(call_budget_ms=2.0, first_call_events=50, chunk_size=700)

    rds.flushdb()
    assert_frames_equal(whole, Enricher(rds, "acme", config).enrich(events))
    assert len(pipelines) == 1 and sizes == []  # nobody waiting: 5 calls of up to 700, one round trip

    rds.flushdb()
    sync_traffic_mark(rds)
    assert 0 < rds.pttl(engine.SYNC_TRAFFIC_KEY) <= engine.SYNC_TRAFFIC_MS
    assert_frames_equal(whole, Enricher(rds, "acme", config).enrich(events))
    assert len(pipelines) == 1  # one call at a time
    assert sizes[0] == 50 and sum(sizes) == len(events) and len(sizes) > 10
    assert max(sizes) < 700  # ~2 ms of script each: tens of events, not the cap
    sizes.clear()
    Enricher(rds, "acme", replace(config, call_budget_ms=60_000)).enrich(events[:1_000])
    assert sizes == [50, 700, 250]  # a generous budget: up to the cap


def _mixed_stream(seed: int, n: int, hours: float, late_share: float) -> list[dict[str, Any]]:
    """Payments, orders and returns over `hours` (longer than the windows), a share arriving late."""
    rng = np.random.default_rng(seed)
    events = []
    for i, e in enumerate(payments(n, seed=seed, fraud_rate=0.05, hours=hours, n_customers=12)):
        e = {**e, "order_id": f"o{i // 2}", "ip": f"ip{rng.integers(4)}", "device_id": f"d{rng.integers(5)}"}
        if i % 7 == 3:
            e = {**e, "type": "order", "status": None}
        elif i % 11 == 5:
            e = {**e, "type": "return", "event_id": f"r{i}", "order_id": f"o{(i // 2) - 3}"}
        events.append(e)
    late = rng.random(n) < late_share
    for i in np.flatnonzero(late):
        if i > 3:
            events[i - 3], events[i] = events[i], events[i - 3]
    return events


@pytest.mark.parametrize("config", [
    EnrichConfig(long_window_seconds=6 * 3600, return_window_seconds=86_400, attribute_retention_seconds=86_400,
                 device_streak_ttl_seconds=3600),
    EnrichConfig(velocity_cap=4, attribute_cap=3, return_cap=5, history_cap=3),
], ids=["windows", "caps"])
def test_records_written_per_event_or_per_chunk_give_the_same_features(rds, config):
    # Windows and caps drop entries; reads honour what was dropped, so when a record is written
    # back (after every event, or once per chunk) does not change a feature. Some events are late.
    late = 0.1 if config.velocity_cap > 100 else 0.0  # with tiny caps, in order (caps keep the newest)
    events = _mixed_stream(7, 600, hours=72, late_share=late)
    batch = Enricher(rds, "acme", replace(config, chunk_size=100)).enrich(events)
    rds.flushdb()
    en = Enricher(rds, "acme", config)
    rows = [en.enrich_one(e) for e in events]
    single = {k: np.array([r[k] for r in rows]) for k in FEATURE_NAMES}
    assert_frames_equal(batch, single)
    assert batch["cust_returns_window"].max() > 0 and batch["cust_count_24h"].max() >= 4


def test_state_lost_then_rebuilt_gives_same_features(rds):
    events = payments(300, seed=4, fraud_rate=0.05, hours=6)
    history, live = events[:200], events[200:]
    en = Enricher(rds, "acme")
    en.enrich(history)
    expected = en.enrich(live)
    rds.flushdb()  # Redis lost everything
    assert rebuild_state(rds, "acme", iter(history), chunk_size=37) == len(history)
    again = en.enrich(live)
    assert_frames_equal(expected, again)


def test_replayed_batch_is_not_applied_twice(rds):
    en = Enricher(rds, "acme")
    events = [pay(i, i) for i in range(3)]
    first = en.enrich(events)
    second = en.enrich(events)
    assert first["applied"].tolist() == [1, 1, 1]
    assert second["applied"].tolist() == [0, 0, 0]
    nxt = en.enrich([pay(9, 5)])
    assert nxt["cust_count_1h"][0] == 4 and nxt["cust_history_n"][0] == 3


def test_state_is_bounded_and_tenant_scoped(rds):
    Enricher(rds, "acme").enrich(payments(50, seed=5))
    Enricher(rds, "globex").enrich([pay(0, 0)])
    keys = rds.keys("*")
    assert keys and all(k.startswith((b"pulse:{acme}:", b"pulse:{globex}:")) for k in keys)
    assert all(rds.pttl(k) > 0 for k in keys)  # every key expires
    # the other tenant's traffic on the same ip/customer ids is invisible
    f = Enricher(rds, "globex").enrich([pay(1, 1)])
    assert f["cust_count_1h"][0] == 2
    assert clear_state(rds, "globex") > 0
    assert not rds.keys("pulse:{globex}:*") and rds.keys("pulse:{acme}:*")


def test_bad_input_is_refused(rds):
    en = Enricher(rds, "acme")
    with pytest.raises(ValueError, match="type"):
        en.enrich([pay(0, 0, type="click")])
    with pytest.raises(ValueError, match="x1f"):
        en.enrich([pay(0, 0, customer_id="a\x1fb")])
    with pytest.raises(ValueError):
        Enricher(rds, "bad{tenant}")
    assert en.enrich([]).n_rows == 0


def test_dataframe_input_gives_the_same_features_as_dicts(rds):
    import pandas as pd

    events = payments(60, seed=6, hours=2)
    from_dicts = Enricher(rds, "acme").enrich(events)
    rds.flushdb()
    df = pd.DataFrame(events)
    df["amount"] = df["amount"].astype(str)  # numeric strings, as a CSV upload would give
    assert_frames_equal(from_dicts, Enricher(rds, "acme").enrich(df))


def test_amount_prior_from_a_sample():
    from scoring.enrich import amount_prior

    med, mad = amount_prior([10.0, 100.0, 1000.0])
    assert med == pytest.approx(np.log1p(100.0))
    assert mad == pytest.approx(np.log1p(100.0) - np.log1p(10.0), rel=0.01)
    default_med, default_mad = amount_prior([])
    assert default_med == EnrichConfig().prior_log_median and default_mad == EnrichConfig().prior_log_mad


@pytest.mark.parametrize("cap", [32, 5])
def test_history_median_and_mad_are_those_of_the_last_purchases(rds, cap):
    # The robust z of each payment against the customer's previous `cap` purchases (median / MAD of
    # log1p(amount)), recomputed here with NumPy; odd and even counts, ties, the cap's eviction.
    cfg = EnrichConfig(history_cap=cap, chunk_size=7)
    amounts = [40.0, 45.0, 45.0, 120.0, 12.5, 60.0, 45.0, 300.0, 33.3, 80.0, 80.0, 19.99, 55.0, 61.0]
    f = Enricher(rds, "acme", cfg).enrich([pay(i, i * 30, amount=a) for i, a in enumerate(amounts)])
    for i, amount in enumerate(amounts):
        past = np.log1p(np.array(amounts[max(0, i - cap):i]))
        assert f["cust_history_n"][i] == len(past)
        if len(past) == 0:
            continue
        med = np.median(past)
        mad = np.median(np.abs(past - med))
        w = len(past) / (len(past) + cfg.shrink_points)
        centre = w * med + (1 - w) * cfg.prior_log_median
        scale = max(1.4826 * (w * mad + (1 - w) * cfg.prior_log_mad), cfg.min_log_scale)
        assert f["amount_robust_z"][i] == pytest.approx((np.log1p(amount) - centre) / scale, rel=1e-12, abs=1e-12)
