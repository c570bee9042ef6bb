from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from statistics import median
from typing import Any

import pytest

from simulator import generate, load_config
from simulator.events import validate_event
from simulator.io import write_scenario
from simulator.labels import Label, parse_time
from tests.simulator._scenarios import alltypes, alltypes_events, small, small_events

Events = tuple[dict[str, Any], ...]


def _ts(ev: dict[str, Any]) -> datetime:
    return parse_time(ev["timestamp"])


def _in(evs: Events, etype: str, a: datetime, b: datetime, **eq: Any) -> list[dict[str, Any]]:
    return [e for e in evs if e["type"] == etype and a <= _ts(e) < b and all(e.get(k) == v for k, v in eq.items())]


def _label(scn, incident_id: str) -> Label:
    return next(lab for lab in scn.labels if lab.incident_id == incident_id)


DAY = timedelta(days=1)


# --------------------------------------------------------------------------- determinism

def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_bytes(tmp_path) -> None:
    cfg = load_config("small")
    a = write_scenario(generate(cfg), tmp_path / "a", fmt="ndjson", compress=True)
    b = write_scenario(generate(cfg), tmp_path / "b", fmt="ndjson", compress=True)
    assert _digest(a["events"]) == _digest(b["events"])
    assert _digest(a["labels"]) == _digest(b["labels"])
    c = write_scenario(generate(cfg), tmp_path / "c", fmt="csv")
    d = write_scenario(generate(cfg), tmp_path / "d", fmt="csv")
    assert _digest(c["events"]) == _digest(d["events"])


def test_different_seed_different_bytes(tmp_path) -> None:
    cfg = load_config("small")
    a = write_scenario(generate(cfg, seed=1), tmp_path / "a")
    b = write_scenario(generate(cfg, seed=2), tmp_path / "b")
    assert _digest(a["events"]) != _digest(b["events"])
    assert _digest(a["labels"]) != _digest(b["labels"])


def test_small_size_is_as_documented() -> None:
    assert 10_000 <= len(small().events) <= 20_000


# --------------------------------------------------------------------------- schema and conventions

@pytest.mark.parametrize("events", [small_events, alltypes_events], ids=["small", "alltypes"])
def test_every_event_is_valid_sorted_and_unique(events) -> None:
    evs = events()
    errors = Counter(f"{e['type']}: {err}" for e in evs for err in validate_event(e))
    assert not errors, errors.most_common(5)
    ts = [_ts(e) for e in evs]
    assert ts == sorted(ts)
    ids = [e["event_id"] for e in evs]
    assert len(set(ids)) == len(ids)
    assert all(e["timestamp"].endswith("+00:00") for e in evs)


def test_all_event_types_present() -> None:
    types = {e["type"] for e in alltypes_events()}
    assert {"impression", "click", "order", "payment", "order_status", "return", "stock"} <= types


def test_orders_payments_statuses_returns_conventions() -> None:
    evs = alltypes_events()
    orders = {e["order_id"]: e for e in evs if e["type"] == "order"}
    payments: dict[str, list[dict]] = defaultdict(list)
    statuses: dict[str, list[str]] = defaultdict(list)
    delivered_at: dict[str, datetime] = {}
    for e in evs:
        if e["type"] == "payment":
            payments[e["order_id"]].append(e)
        elif e["type"] == "order_status":
            statuses[e["order_id"]].append(e["status"])
            if e["status"] == "delivered":
                delivered_at[e["order_id"]] = _ts(e)
    for oid, o in orders.items():
        items = o["attributes"]["items"]
        assert Decimal(o["amount"]) == sum(Decimal(i["unit_price"]) * i["quantity"] for i in items)
        assert o["quantity"] == sum(i["quantity"] for i in items)
        assert o["product_id"] in {i["product_id"] for i in items}
        assert len({i["product_id"] for i in items}) == len(items)
        pays = payments[oid]
        assert pays, oid
        assert all(p["amount"] == o["amount"] and _ts(p) >= _ts(o) and p["store_id"] for p in pays)
        seq = statuses[oid]
        assert seq[0] == "pending"
        rank = {"pending": 0, "confirmed": 1, "shipped": 2, "delivered": 3, "cancelled": 2}
        assert [rank[s] for s in seq] == sorted(rank[s] for s in seq)
        if any(p["status"] == "succeeded" for p in pays) and len(seq) > 1:
            assert seq[1] == "confirmed"
    assert set(payments) <= set(orders)
    for r in (e for e in evs if e["type"] == "return"):
        assert r["order_id"] in delivered_at and _ts(r) > delivered_at[r["order_id"]]
        assert r["product_id"] in {i["product_id"] for i in orders[r["order_id"]]["attributes"]["items"]}


def test_traffic_conventions() -> None:
    evs = small_events()
    clicks = [e for e in evs if e["type"] == "click"]
    assert len({c["session_id"] for c in clicks}) == len(clicks)  # one click per session landing
    imps = [e for e in evs if e["type"] == "impression"]
    assert all(_ts(i).timestamp() % 300 == 0 and i["quantity"] >= 1 for i in imps)
    assert len({(i["timestamp"], i["channel"], i["campaign"]) for i in imps}) == len(imps)
    channels = Counter(c["channel"] for c in clicks)
    assert set(channels) == {"organic", "paid_search", "social", "email", "affiliate"}
    # Daily seasonality: evening traffic far above the small hours (local time, UTC+2).
    by_hour = Counter((_ts(c).hour + 2) % 24 for c in clicks)
    assert by_hour[20] > 5 * by_hour[4]
    # Session orders carry the session's channel; most sessions do not convert.
    orders = [e for e in evs if e["type"] == "order" and "session_id" in e]
    assert 0.01 < len(orders) / len(clicks) < 0.08


def test_customer_base_grows_and_returns() -> None:
    orders = [e for e in alltypes_events() if e["type"] == "order"]
    per_customer = Counter(o["customer_id"] for o in orders)
    assert any(n >= 2 for n in per_customer.values())
    initial = 3000
    new = {c for c in per_customer if int(c.split("-")[1]) >= initial}
    assert len(new) > len(orders) * 0.3


# --------------------------------------------------------------------------- KPI incidents (small)

def _session_orders(evs: Events, a: datetime, b: datetime) -> int:
    # Fraud orders have no session: the incident checks look at the shop's real traffic.
    return sum(1 for e in _in(evs, "order", a, b) if "session_id" in e)


def test_checkout_outage_has_near_zero_orders() -> None:
    lab = _label(small(), "outage-1")
    evs = small_events()
    during = _session_orders(evs, lab.start, lab.end)
    before = _session_orders(evs, lab.start - DAY, lab.end - DAY)
    assert before >= 10
    assert during <= 0.15 * before
    assert lab.kind == "kpi" and lab.metric == "orders" and lab.direction == "down"


def test_flash_sale_spikes() -> None:
    lab = _label(small(), "flash-1")
    evs = small_events()
    assert _session_orders(evs, lab.start, lab.end) >= 2 * _session_orders(evs, lab.start - DAY, lab.end - DAY)
    assert len(_in(evs, "click", lab.start, lab.end)) >= 2 * len(_in(evs, "click", lab.start - DAY, lab.end - DAY))


def test_campaign_break_collapses_ctr() -> None:
    lab = _label(small(), "break-1")
    evs = small_events()

    def ctr(a: datetime, b: datetime) -> float:
        camp = lab.dimensions["campaign"]
        clicks = len(_in(evs, "click", a, b, campaign=camp))
        imps = sum(e["quantity"] for e in _in(evs, "impression", a, b, campaign=camp))
        return clicks / imps

    assert lab.metric == "ctr" and lab.dimensions == {"channel": "paid_search", "campaign": "brand_search"}
    assert ctr(lab.start, lab.end) < 0.3 * ctr(lab.start - DAY, lab.end - DAY)


# --------------------------------------------------------------------------- fraud (small)

def test_card_testing_burst() -> None:
    lab = _label(small(), "cardtest-1")
    evs = {e["event_id"]: e for e in small_events()}
    pays = [evs[i] for i in lab.event_ids]
    assert len(pays) >= 40
    assert sum(p["status"] == "failed" for p in pays) / len(pays) >= 0.6
    assert median(float(p["amount"]) for p in pays) < 10
    assert len({p["attributes"]["card_fingerprint"] for p in pays}) >= 0.9 * len(pays)
    assert {p["ip"] for p in pays} == {lab.entity}
    assert len({p["device_id"] for p in pays}) == 1
    assert lab.end - lab.start <= timedelta(minutes=40)


def test_ip_ring_shares_one_ip() -> None:
    lab = _label(small(), "ipring-1")
    evs = {e["event_id"]: e for e in small_events()}
    pays = [evs[i] for i in lab.event_ids]
    assert {p["ip"] for p in pays} == {lab.entity}
    assert len({p["customer_id"] for p in pays}) == 5
    assert len({p["device_id"] for p in pays}) == 5


def test_high_amount_new_customer() -> None:
    lab = _label(small(), "bigspender-1")
    evs = small_events()
    pay = next(e for e in evs if e["event_id"] == lab.event_ids[0])
    amounts = [float(e["amount"]) for e in evs if e["type"] == "payment"]
    assert float(pay["amount"]) >= 5 * median(amounts)
    earlier = [e for e in evs if e["type"] == "order" and e["customer_id"] == lab.entity and _ts(e) < _ts(pay)]
    assert earlier == [] or all(e["order_id"] == pay["order_id"] for e in earlier)


def test_account_takeover_unusual_amount_device_country() -> None:
    lab = _label(small(), "ato-1")
    evs = small_events()
    ato_ids = set(lab.event_ids)
    mine = [e for e in evs if e["type"] == "payment" and e["customer_id"] == lab.entity]
    history = [e for e in mine if e["event_id"] not in ato_ids]
    ato = [e for e in mine if e["event_id"] in ato_ids]
    assert len(history) >= 3 and len(ato) == 2
    assert all(_ts(h) < _ts(ato[0]) for h in history)
    assert {a["device_id"] for a in ato}.isdisjoint({h["device_id"] for h in history})
    assert {a["country"] for a in ato}.isdisjoint({h["country"] for h in history})
    assert min(float(a["amount"]) for a in ato) >= 3 * median(float(h["amount"]) for h in history)
    assert {a["email_hash"] for a in ato} == {h["email_hash"] for h in history}  # same account


# --------------------------------------------------------------------------- other types (alltypes)

def test_tracking_loss_clicks_vanish_orders_continue() -> None:
    lab = _label(alltypes(), "tl")
    evs = alltypes_events()
    assert len(_in(evs, "click", lab.start, lab.end, channel="social")) == 0
    assert len(_in(evs, "click", lab.start - DAY, lab.end - DAY, channel="social")) > 50
    assert len(_in(evs, "impression", lab.start, lab.end, channel="social")) > 0
    unattributed = [e for e in _in(evs, "order", lab.start, lab.end) if "session_id" in e and "channel" not in e]
    assert unattributed


def test_price_error_sells_far_below_price() -> None:
    scn = alltypes()
    lab = _label(scn, "pe")
    evs = alltypes_events()
    list_price = Decimal(lab.attributes["list_price"])

    def lines(a: datetime, b: datetime) -> list[dict]:
        return [i for o in _in(evs, "order", a, b) for i in o["attributes"]["items"] if i["product_id"] == lab.entity]

    bad = lines(lab.start, lab.end)
    assert bad and all(Decimal(i["unit_price"]) <= list_price * Decimal("0.2") for i in bad)
    units = sum(i["quantity"] for i in bad)
    assert units >= 3 * max(1, sum(i["quantity"] for i in lines(lab.start - DAY, lab.end - DAY)))


def test_stockout_best_seller() -> None:
    lab = _label(alltypes(), "so")
    evs = alltypes_events()
    assert lab.kind == "stock" and lab.entity == "SKU-0000"
    stock = _in(evs, "stock", lab.start, lab.end, product_id=lab.entity)
    assert stock and stock[0]["stock_level"] == 0 and _ts(stock[0]) == lab.start
    assert all(s["stock_level"] == 0 for s in stock)
    sold = [i for o in _in(evs, "order", lab.start, lab.end) if "session_id" in o
            for i in o["attributes"]["items"] if i["product_id"] == lab.entity]
    assert sold == []
    before = [i for o in _in(evs, "order", lab.start - DAY, lab.start) for i in o["attributes"]["items"]
              if i["product_id"] == lab.entity]
    assert len(before) >= 5  # a best seller that normally sells every day
    after = _in(evs, "stock", lab.end, lab.end + timedelta(hours=2), product_id=lab.entity)
    assert after and after[0]["stock_level"] > 0  # restocked when the incident ends


def test_slow_decline_lowers_revenue_over_days() -> None:
    lab = _label(alltypes(), "sd")
    evs = alltypes_events()
    hold_start = parse_time(lab.attributes["decline_end"])
    baseline = _session_orders(evs, lab.start - 3 * DAY, lab.start) / 3
    held = _session_orders(evs, hold_start, lab.end) / ((lab.end - hold_start) / DAY)
    assert held < 0.6 * baseline


def test_device_ring_and_return_abuse_and_compromised_store() -> None:
    scn = alltypes()
    evs = {e["event_id"]: e for e in alltypes_events()}
    ring = _label(scn, "dr")
    pays = [evs[i] for i in ring.event_ids]
    assert {p["device_id"] for p in pays} == {ring.entity} and len({p["customer_id"] for p in pays}) == 4
    abuse = [lab for lab in scn.labels if lab.type == "return_abuse"]
    assert abuse
    for lab in abuse:
        rets = [evs[i] for i in lab.event_ids]
        assert all(r["type"] == "return" and r["customer_id"] == lab.entity for r in rets)
        assert len(rets) >= 2
    store = _label(scn, "cs")
    fraud = [evs[i] for i in store.event_ids]
    legit = [e for e in evs.values() if e["type"] == "payment" and e.get("store_id") == "app-android"
             and scn.truth[e["event_id"]] == "legit"]
    assert {p["store_id"] for p in fraud} == {"app-android"} and len(fraud) >= 10
    # Looks normal: amounts in the same range as the store's honest payments.
    assert 0.5 < median(float(p["amount"]) for p in fraud) / median(float(p["amount"]) for p in legit) < 2


# --------------------------------------------------------------------------- labels line up

@pytest.mark.parametrize("scn_fn,events_fn", [(small, small_events), (alltypes, alltypes_events)],
                         ids=["small", "alltypes"])
def test_labels_line_up_with_events(scn_fn, events_fn) -> None:
    scn = scn_fn()
    evs = {e["event_id"]: e for e in events_fn()}
    assert len({lab.incident_id for lab in scn.labels}) == len(scn.labels)
    fraud_ids: set[str] = set()
    for lab in scn.labels:
        assert scn.start <= lab.start <= lab.end <= scn.end
        if lab.kind != "fraud":
            assert not lab.event_ids and lab.metric
            continue
        assert lab.event_ids, lab.incident_id
        for eid in lab.event_ids:
            ev = evs[eid]
            assert ev["type"] == ("return" if lab.type == "return_abuse" else "payment")
            assert lab.start <= _ts(ev) <= lab.end
        fields = {e.get(k) for e in (evs[i] for i in lab.event_ids)
                  for k in ("ip", "device_id", "customer_id", "store_id")}
        assert lab.entity in fields
        assert lab.known_at == lab.end + timedelta(days=7)
        fraud_ids.update(lab.event_ids)
    # Truth covers every payment and return, and its fraud set is exactly the labelled events.
    scored = {i for i, e in evs.items() if e["type"] in ("payment", "return")}
    assert set(scn.truth) == scored
    assert {i for i, v in scn.truth.items() if v == "fraud"} == fraud_ids
    assert {e.event_id for e in scn.event_labels} == fraud_ids
    for el in scn.event_labels:
        assert el.known_at == _ts(evs[el.event_id]) + timedelta(days=7)


def test_labels_known_by_gives_no_look_ahead() -> None:
    ls = alltypes().label_set()
    cut = alltypes().start + timedelta(days=9)
    known = ls.labels_known_by(cut)
    assert known and all(e.known_at <= cut for e in known) and len(known) < len(ls.event_labels)


def test_baseline_traffic_is_independent_of_injected_fraud() -> None:
    """Adding a fraud pattern must not reshuffle the rest of the shop (separate random streams)."""
    cfg = load_config("small")
    plain = cfg.model_copy(update={"fraud": []})
    a = [e for e in generate(cfg).events if e["type"] == "click"]
    b = [e for e in generate(plain).events if e["type"] == "click"]
    assert a == b


def test_events_pass_the_ingestion_validator() -> None:
    """Contract with ingestion: every simulated event is accepted as is (none rejected)."""
    schemas = pytest.importorskip("ingestion.schemas")
    now = datetime(2030, 1, 1).astimezone()
    for batch in alltypes().events.batches(5000):
        result = schemas.validate_batch(batch, tenant_tz="Europe/Paris", tenant_currency="EUR", now=now)
        assert not result.rejected, result.rejected[:3]
        assert len(result.valid) == len(batch)
