"""Scenario generation: traffic -> sessions -> orders -> payments -> statuses -> returns,
with stock, injected incidents and fraud, and the labels that describe them.

Determinism: every component draws from its own generator seeded by (seed, name), so
adding a fraud pattern does not reshuffle the baseline traffic, and the same config
and seed give the same events byte for byte. No set or dict of strings is ever
iterated in hash order.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from simulator import config as C
from simulator.config import ScenarioConfig, parse_duration
from simulator.events import EventTable, EventTableBuilder, cents_to_str, obj
from simulator.labels import EventLabel, Label, LabelSet

STEP = 300  # seconds per traffic bucket; impressions are aggregated at this grain
_IP_OCTETS = {"FR": (82, 90, 176), "DE": (84, 91, 178), "GB": (81, 86, 151), "ES": (83, 88, 95),
              "IT": (79, 87, 93), "NL": (77, 145, 213), "BE": (78, 109, 178), "US": (24, 67, 98),
              "RO": (5, 86, 188), "NG": (41, 105, 197), "BR": (177, 187, 189)}
_RETURN_REASONS = ("size", "damaged", "not_as_described", "changed_mind", "late_delivery")


def _ip_str(country: str, ip: np.ndarray) -> np.ndarray:
    octets = _IP_OCTETS.get(country) or (1 + zlib.crc32(country.encode()) % 200,) * 3
    first = np.asarray(octets)[ip % len(octets)]
    rest = ip % (1 << 24)
    return obj([f"{a}.{b >> 16 & 255}.{b >> 8 & 255}.{(b & 255) or 1}" for a, b in
                zip(first.tolist(), rest.tolist(), strict=True)])


def _email_hash(idx: int) -> str:
    return hashlib.sha256(f"customer-{idx}@shop.example".encode()).hexdigest()[:40]


# --------------------------------------------------------------------------- time grid

@dataclass(frozen=True)
class TimeGrid:
    t0: int  # epoch seconds
    n: int  # buckets of STEP seconds
    local_hour: np.ndarray  # fractional local hour of each bucket start
    weekday: np.ndarray  # 0 = Monday, local
    day: np.ndarray  # local calendar day index since the start
    peak: np.ndarray  # yearly-peak multiplier per bucket

    @property
    def end(self) -> int:
        return self.t0 + self.n * STEP

    @classmethod
    def build(cls, cfg: ScenarioConfig) -> TimeGrid:
        tz = ZoneInfo(cfg.timezone)
        t0 = int(cfg.start.timestamp())
        n = int(round(cfg.days * 86400 / STEP))
        local = [datetime.fromtimestamp(t0 + i * STEP, tz) for i in range(n)]
        first = local[0].date()
        hour = np.array([d.hour + d.minute / 60 for d in local])
        weekday = np.array([d.weekday() for d in local])
        day = np.array([(d.date() - first).days for d in local])
        peak = np.ones(n)
        for p in cfg.traffic.yearly_peaks:
            month, dom = (int(x) for x in p.date.split("-"))
            dist = np.full(n, np.inf)
            for year_shift in (-1, 0, 1):
                centre = datetime(first.year + year_shift, month, dom, 12, tzinfo=tz).timestamp()
                dist = np.minimum(dist, np.abs(t0 + np.arange(n) * STEP - centre) / 86400)
            peak *= 1 + (p.multiplier - 1) * np.exp(-0.5 * (dist / p.width_days) ** 2)
        return cls(t0, n, hour, weekday, day, peak)

    def window(self, at: str, duration: str) -> tuple[int, int]:
        """[start, end) in epoch seconds, clipped to the scenario."""
        a = self.t0 + int(parse_duration(at).total_seconds())
        b = a + int(parse_duration(duration).total_seconds())
        return a, min(b, self.end)

    def buckets(self, a: int, b: int) -> slice:
        return slice(max(0, (a - self.t0) // STEP), max(0, -(-(b - self.t0) // STEP)))


# --------------------------------------------------------------------------- catalogue

@dataclass
class Catalogue:
    ids: list[str]
    category: np.ndarray  # category index per product
    categories: list[str]
    price_cents: np.ndarray
    cost_cents: np.ndarray
    popularity: np.ndarray  # probability a line picks the product
    return_rate: np.ndarray

    @classmethod
    def build(cls, cfg: C.CatalogueConfig, rng: np.random.Generator) -> Catalogue:
        cats = cfg.categories
        w = np.array([c.weight for c in cats]) / sum(c.weight for c in cats)
        cat = rng.choice(len(cats), size=cfg.n_products, p=w)
        lo = np.array([cats[i].price_min for i in cat])
        hi = np.array([cats[i].price_max for i in cat])
        # Log-uniform prices: many cheap items, a few expensive ones, within the category band.
        price = np.exp(rng.uniform(np.log(lo), np.log(hi)))
        price_cents = (np.round(price) * 100 - 1).astype(np.int64)  # psychological x.99 prices
        ratio = np.array([rng.uniform(*cats[i].cost_ratio) for i in cat])
        ranks = rng.permutation(cfg.n_products)
        pop = 1.0 / (ranks + 1.0) ** cfg.popularity_exponent
        # Best sellers are rank 0..k: order products by popularity so rank r = product index r.
        order = np.argsort(-pop, kind="stable")
        ids = [f"SKU-{i:04d}" for i in range(cfg.n_products)]
        return cls(ids=ids, category=cat[order], categories=[c.name for c in cats],
                   price_cents=price_cents[order], cost_cents=(price_cents * ratio).astype(np.int64)[order],
                   popularity=(pop / pop.sum())[order],
                   return_rate=np.array([cats[i].return_rate for i in cat])[order])

    def to_dicts(self) -> list[dict[str, Any]]:
        return [{"product_id": pid, "category": self.categories[int(c)], "price": f"{p / 100:.2f}",
                 "cost": f"{k / 100:.2f}"} for pid, c, p, k in
                zip(self.ids, self.category, self.price_cents, self.cost_cents, strict=True)]


# --------------------------------------------------------------------------- customers

class Customers:
    """Identity columns per customer index; fraud appends new identities at the end."""

    def __init__(self, countries: list[str]) -> None:
        self.countries = countries
        self.country = np.empty(0, np.int64)
        self.device = np.empty(0, np.int64)
        self.ip = np.empty(0, np.int64)
        self.card = np.empty(0, np.int64)
        self.store = np.empty(0, np.int64)
        self.method = np.empty(0, np.int64)
        self._next_device = 10_000_000
        self._next_card = 0

    def __len__(self) -> int:
        return len(self.country)

    def country_index(self, name: str) -> int:
        if name not in self.countries:
            self.countries.append(name)
        return self.countries.index(name)

    def fresh_devices(self, n: int) -> np.ndarray:
        out = np.arange(self._next_device, self._next_device + n)
        self._next_device += n
        return out

    def fresh_cards(self, n: int) -> np.ndarray:
        out = np.arange(self._next_card, self._next_card + n)
        self._next_card += n
        return out

    def add(self, country: np.ndarray, device: np.ndarray, ip: np.ndarray, store: np.ndarray,
            method: np.ndarray) -> np.ndarray:
        start = len(self)
        n = len(country)
        self.country = np.concatenate([self.country, country])
        self.device = np.concatenate([self.device, device])
        self.ip = np.concatenate([self.ip, ip])
        self.card = np.concatenate([self.card, self.fresh_cards(n)])
        self.store = np.concatenate([self.store, store])
        self.method = np.concatenate([self.method, method])
        return np.arange(start, start + n)


# --------------------------------------------------------------------------- orders

@dataclass
class Orders:
    """Orders as columns, with their lines (`line_order` indexes the order)."""

    ts: np.ndarray
    customer: np.ndarray
    session: np.ndarray  # object: session id or None
    channel: np.ndarray  # channel index, -1 = unattributed
    campaign: np.ndarray  # campaign index, -1 = none
    store: np.ndarray
    country: np.ndarray
    device: np.ndarray
    ip: np.ndarray
    method: np.ndarray
    card: np.ndarray
    fraud: np.ndarray  # index into the generator's label list, -1 = legit
    forced_fail: np.ndarray  # -1 = natural, 0 = payment succeeds, 1 = payment fails
    return_rate: np.ndarray  # NaN = category rate
    line_order: np.ndarray
    line_product: np.ndarray
    line_qty: np.ndarray
    line_cents: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    @staticmethod
    def concat(parts: list[Orders]) -> Orders:
        parts = [p for p in parts if len(p)]
        offsets = np.cumsum([0] + [len(p) for p in parts[:-1]])
        kw: dict[str, np.ndarray] = {}
        for name in Orders.__dataclass_fields__:
            arrays = [getattr(p, name) + off if name == "line_order" else getattr(p, name)
                      for p, off in zip(parts, offsets, strict=True)]
            kw[name] = np.concatenate(arrays)
        return Orders(**kw)

    def sorted(self) -> Orders:
        order = np.argsort(self.ts, kind="stable")
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        kw = {n: getattr(self, n)[order] for n in Orders.__dataclass_fields__ if not n.startswith("line_")}
        lorder = np.lexsort((np.arange(len(self.line_order)), inverse[self.line_order]))
        for n in ("line_product", "line_qty", "line_cents"):
            kw[n] = getattr(self, n)[lorder]
        kw["line_order"] = inverse[self.line_order][lorder]
        return Orders(**kw)

    def totals(self) -> tuple[np.ndarray, np.ndarray]:
        cents = np.bincount(self.line_order, weights=self.line_cents * self.line_qty, minlength=len(self))
        qty = np.bincount(self.line_order, weights=self.line_qty, minlength=len(self))
        return np.round(cents).astype(np.int64), qty.astype(np.int64)

    def main_product(self) -> np.ndarray:
        """Product of each order's largest line (first line on ties)."""
        value = self.line_cents * self.line_qty
        idx = np.lexsort((np.arange(len(value)), -value, self.line_order))
        first = np.ones(len(idx), dtype=bool)
        first[1:] = self.line_order[idx][1:] != self.line_order[idx][:-1]
        out = np.full(len(self), -1, np.int64)
        out[self.line_order[idx][first]] = self.line_product[idx][first]
        return out


# --------------------------------------------------------------------------- scenario

@dataclass
class Scenario:
    config: ScenarioConfig
    seed: int
    events: EventTable
    labels: list[Label]
    event_labels: list[EventLabel]
    truth: dict[str, str]
    catalogue: list[dict[str, Any]] = field(default_factory=list)

    @property
    def start(self) -> datetime:
        return self.config.start.astimezone(UTC)

    @property
    def end(self) -> datetime:
        return self.config.end.astimezone(UTC)

    def label_set(self) -> LabelSet:
        return LabelSet(labels=self.labels, event_labels=self.event_labels, truth=self.truth,
                        meta=self.meta())

    def meta(self) -> dict[str, Any]:
        types, n = np.unique(self.events.column("type").astype(str), return_counts=True)
        counts = {str(t): int(k) for t, k in zip(types, n, strict=True)}
        return {"scenario": self.config.name, "seed": self.seed, "start": self.start.isoformat(),
                "end": self.end.isoformat(), "currency": self.config.currency,
                "events": len(self.events), "events_by_type": counts, "labels": len(self.labels),
                "fraud_events": sum(1 for v in self.truth.values() if v == "fraud"),
                "catalogue": self.catalogue}


def generate(config: ScenarioConfig, seed: int | None = None) -> Scenario:
    """Generate a scenario; `seed` overrides the config's seed."""
    return _Generator(config, config.seed if seed is None else seed).run()


class _Generator:
    def __init__(self, cfg: ScenarioConfig, seed: int) -> None:
        self.cfg = cfg
        self.seed = seed
        self.tag = f"{cfg.name}-{seed}"
        self.grid = TimeGrid.build(cfg)
        self.channels = list(cfg.traffic.channel_shares)
        self.campaigns = [c.name for c in cfg.traffic.campaigns]
        self.stores = list(cfg.orders.stores)
        self.methods = list(cfg.orders.payment_methods)
        self.catalogue = Catalogue.build(cfg.catalogue, self.rng("catalogue"))
        self.customers = Customers(list(cfg.customers.countries))
        self.builder = EventTableBuilder()
        self.labels: list[Label] = []
        self.label_specs: list[tuple[str, Any]] = []  # (incident id, spec) per fraud label index
        self.stock_events: list[tuple[int, int, int, str]] = []
        self.injected = cfg.injected()

    def rng(self, *names: str) -> np.random.Generator:
        key = [zlib.crc32(n.encode()) for n in names]
        return np.random.default_rng([self.seed, *key])

    def _p(self, weights: dict[str, float]) -> np.ndarray:
        w = np.array(list(weights.values()), dtype=float)
        return w / w.sum()

    # ------------------------------------------------------------------ run
    def run(self) -> Scenario:
        mods = self._modifiers()
        self._init_customers()
        sessions = self._sessions(mods)
        orders = self._orders_from_sessions(sessions, mods)
        orders = self._stock(orders, mods)
        orders = Orders.concat([orders, *self._fraud_orders(orders)]).sorted()
        self._mark_compromised_stores(orders)
        table_parts = self._emit_orders(orders)
        self._emit_stock()
        table = self.builder.build()
        labels, event_labels, truth = self._finish_labels(table_parts)
        return Scenario(config=self.cfg, seed=self.seed, events=table, labels=labels,
                        event_labels=event_labels, truth=truth, catalogue=self.catalogue.to_dicts())

    # ------------------------------------------------------------------ incidents
    def _modifiers(self) -> dict[str, Any]:
        g, nch, nb = self.grid, len(self.channels), self.grid.n
        m: dict[str, Any] = {
            "traffic": np.ones((nch, nb)), "conv": np.ones((nch, nb)),
            "ctr": np.ones((len(self.campaigns), nb)), "tracked": np.ones((nch, nb), dtype=bool),
            "price": np.ones(nb), "price_error": [], "stockout": [],
        }
        for ident, inc in self.injected:
            if isinstance(inc, C.FlashSale):
                a, b = g.window(inc.at, inc.duration)
                rows = [self.channels.index(c) for c in inc.channels] if inc.channels else list(range(nch))
                sl = g.buckets(a, b)
                m["traffic"][rows, sl] *= inc.traffic_multiplier
                m["conv"][rows, sl] *= inc.conversion_multiplier
                m["price"][sl] *= 1 - inc.discount
                self._kpi_label(ident, inc, a, b, "orders", {}, None, "up",
                                ("revenue", "sessions", "clicks", "conversion_rate", "units"),
                                {"traffic_multiplier": inc.traffic_multiplier, "discount": inc.discount,
                                 "channels": inc.channels or self.channels})
            elif isinstance(inc, C.CheckoutOutage):
                a, b = g.window(inc.at, inc.duration)
                m["conv"][:, g.buckets(a, b)] *= inc.residual
                self._kpi_label(ident, inc, a, b, "orders", {}, None, "down",
                                ("revenue", "conversion_rate", "payments", "units"), {"residual": inc.residual})
            elif isinstance(inc, C.CampaignBreak):
                a, b = g.window(inc.at, inc.duration)
                ci = self.campaigns.index(inc.campaign)
                m["ctr"][ci, g.buckets(a, b)] *= inc.ctr_multiplier
                channel = self.cfg.traffic.campaigns[ci].channel
                self._kpi_label(ident, inc, a, b, "ctr", {"channel": channel, "campaign": inc.campaign},
                                inc.campaign, "down", ("clicks", "sessions"), {"ctr_multiplier": inc.ctr_multiplier})
            elif isinstance(inc, C.TrackingLoss):
                a, b = g.window(inc.at, inc.duration)
                m["tracked"][self.channels.index(inc.channel), g.buckets(a, b)] = False
                self._kpi_label(ident, inc, a, b, "sessions", {"channel": inc.channel}, inc.channel, "down",
                                ("clicks", "ctr", "orders", "revenue", "conversion_rate"), {})
            elif isinstance(inc, C.SlowDecline):
                a, b = g.window(inc.at, inc.duration)
                hold_end = min(b + int(parse_duration(inc.hold).total_seconds()), g.end)
                rows = [self.channels.index(c) for c in inc.channels] if inc.channels else list(range(nch))
                sl = g.buckets(a, b)
                ramp = 1 - inc.magnitude * np.linspace(0, 1, sl.stop - sl.start)
                m["conv"][np.ix_(np.asarray(rows), np.arange(sl.start, sl.stop))] *= ramp
                m["conv"][rows, g.buckets(b, hold_end)] *= 1 - inc.magnitude
                dims = {"channel": inc.channels[0]} if inc.channels and len(inc.channels) == 1 else {}
                self._kpi_label(ident, inc, a, hold_end, "revenue", dims, None, "down",
                                ("orders", "conversion_rate"), {"magnitude": inc.magnitude,
                                                                "decline_end": _iso(b)})
            elif isinstance(inc, C.PriceError):
                a, b = g.window(inc.at, inc.duration)
                pid = self.catalogue.ids[inc.product_rank]
                m["price_error"].append((a, b, inc.product_rank, inc.price_factor, inc.demand_share))
                self._kpi_label(ident, inc, a, b, "revenue", {"product_id": pid}, pid, None,
                                ("units", "orders", "aov", "avg_unit_price", "margin"),
                                {"price_factor": inc.price_factor,
                                 "list_price": f"{self.catalogue.price_cents[inc.product_rank] / 100:.2f}"})
            elif isinstance(inc, C.Stockout):
                a, b = g.window(inc.at, inc.duration)
                pid = self.catalogue.ids[inc.product_rank]
                m["stockout"].append((a, b, inc.product_rank))
                self.labels.append(Label(
                    incident_id=ident, type=inc.type, kind="stock", start=_dt(a), end=_dt(b),
                    metric="stock_level", dimensions={"product_id": pid}, entity=pid, known_at=_dt(b),
                    related_metrics=("units", "orders", "revenue"), direction="down",
                    attributes={"product_rank": inc.product_rank}))
        return m

    def _kpi_label(self, ident: str, inc: Any, a: int, b: int, metric: str, dims: dict[str, str],
                   entity: str | None, direction: str | None, related: tuple[str, ...],
                   attrs: dict[str, Any]) -> None:
        self.labels.append(Label(incident_id=ident, type=inc.type, kind="kpi", start=_dt(a), end=_dt(b),
                                 metric=metric, dimensions=dims, entity=entity, known_at=_dt(b),
                                 related_metrics=related, direction=direction,  # type: ignore[arg-type]
                                 attributes=attrs))

    # ------------------------------------------------------------------ customers
    def _init_customers(self) -> None:
        cc = self.cfg.customers
        rng = self.rng("customers", "initial")
        n = cc.initial_customers
        country = rng.choice(len(cc.countries), size=n, p=self._p(cc.countries))
        self.customers.add(country=country, device=np.arange(n), ip=rng.integers(0, 1 << 31, n),
                           store=rng.choice(len(self.stores), n, p=self._p(self.cfg.orders.stores)),
                           method=rng.choice(len(self.methods), n, p=self._p(self.cfg.orders.payment_methods)))

    # ------------------------------------------------------------------ traffic
    def _sessions(self, mods: dict[str, Any]) -> dict[str, np.ndarray]:
        cfg, g = self.cfg, self.grid
        tr = cfg.traffic
        prof = np.asarray(tr.daily_profile, dtype=float)
        prof = prof / prof.mean()
        daily = np.interp(g.local_hour, np.arange(25), np.append(prof, prof[0]))
        weekly = np.asarray(tr.weekly_profile)[g.weekday] / np.mean(tr.weekly_profile)
        elapsed = np.arange(g.n) * STEP / 86400
        base = daily * weekly * g.peak * (1 + tr.monthly_growth) ** (elapsed / 30.0)
        base *= tr.sessions_per_day / (86400 / STEP)
        shares = self._p(tr.channel_shares)
        n_days = int(g.day.max()) + 1

        parts_ts, parts_ch, parts_cp = [], [], []
        for ci, ch in enumerate(self.channels):
            camps = [(k, c) for k, c in enumerate(tr.campaigns) if c.channel == ch]
            total = sum(c.share for _, c in camps)
            sources: list[tuple[int, float, float | None]] = [(k, c.share / total, c.ctr) for k, c in camps]
            sources = sources or [(-1, 1.0, None)]
            for k, share, ctr in sources:
                rng = self.rng("traffic", ch, str(k))
                noise = np.exp(rng.normal(0, tr.day_noise, n_days))[g.day]
                lam = base * shares[ci] * share * noise * mods["traffic"][ci]
                if ctr is None:
                    clicks = rng.poisson(lam)
                else:
                    imps = rng.poisson(lam / ctr)
                    clicks = rng.binomial(imps, np.clip(ctr * mods["ctr"][k], 0, 1))
                    nz = np.flatnonzero(imps)
                    self.builder.add(
                        "impression", g.t0 + nz * STEP,
                        obj([f"{self.tag}-imp-{ch[:3]}{k}-{i:06d}" for i in range(len(nz))]),
                        channel=ch, campaign=self.campaigns[k], quantity=obj(imps[nz].tolist()))
                idx = np.repeat(np.arange(g.n), clicks)
                parts_ts.append(g.t0 + idx * STEP + rng.integers(0, STEP, len(idx)))
                parts_ch.append(np.full(len(idx), ci))
                parts_cp.append(np.full(len(idx), k))
        ts = np.concatenate(parts_ts)
        order = np.argsort(ts, kind="stable")
        s = {"ts": ts[order], "channel": np.concatenate(parts_ch)[order],
             "campaign": np.concatenate(parts_cp)[order]}
        s["bucket"] = (s["ts"] - g.t0) // STEP
        s["tracked"] = mods["tracked"][s["channel"], s["bucket"]]
        return s

    # ------------------------------------------------------------------ conversion
    def _orders_from_sessions(self, s: dict[str, np.ndarray], mods: dict[str, Any]) -> Orders:
        cfg, g, cust = self.cfg, self.grid, self.customers
        cv, cc = cfg.conversion, cfg.customers
        rng = self.rng("sessions")
        n = len(s["ts"])
        ret_share = np.array([cc.returning_share[c] for c in self.channels])
        returning = rng.random(n) < ret_share[s["channel"]]
        hour = g.local_hour[s["bucket"]]
        conv_profile = (1 + cv.daily_amplitude * np.cos(2 * np.pi * (hour - cv.peak_hour) / 24))
        conv_profile *= np.where(g.weekday[s["bucket"]] >= 5, cv.weekend_multiplier, 1.0)
        conv_profile *= g.peak[s["bucket"]] ** cv.peak_conversion_exponent
        p = np.array([cv.by_channel[c] for c in self.channels])[s["channel"]] * conv_profile
        order_ts = s["ts"] + rng.integers(60, 1500, n)
        # Incidents act at checkout time (an outage stops orders placed in it, whenever the visit began).
        order_bucket = np.minimum((order_ts - g.t0) // STEP, g.n - 1)
        p *= mods["conv"][s["channel"], order_bucket] * np.where(returning, cv.returning_multiplier, 1.0)
        converts = (rng.random(n) < p) & (order_ts < g.end)

        # New customers are created by a first order, in time order; returning visitors are drawn
        # from the base as it stands at their visit (the base grows over the scenario).
        n0 = len(cust)
        new_buyer = converts & ~returning
        base_size = n0 + np.searchsorted(s["ts"][new_buyer], s["ts"], side="left")
        customer = np.where(returning, np.minimum((rng.random(n) * base_size).astype(np.int64), base_size - 1), -1)
        fresh_ip = rng.integers(0, 1 << 31, n)
        fresh_country = rng.choice(len(cc.countries), n, p=self._p(cc.countries))
        device = cust.fresh_devices(n)
        country = fresh_country.copy()
        ip = fresh_ip.copy()
        s.update(returning=returning, converts=converts, order_ts=order_ts)

        # First orders create customers with the identity of the session that bought.
        n_new = int(new_buyer.sum())
        new_idx = cust.add(country=fresh_country[new_buyer], device=device[new_buyer], ip=fresh_ip[new_buyer],
                           store=rng.choice(len(self.stores), n_new, p=self._p(cfg.orders.stores)),
                           method=rng.choice(len(self.methods), n_new, p=self._p(cfg.orders.payment_methods)))
        customer[new_buyer] = new_idx
        # Known customers mostly come back on their usual device and home connection.
        k = np.flatnonzero(returning)
        ck = customer[k]
        country[k] = cust.country[ck]
        use_primary = rng.random(len(k)) < cc.primary_device_share
        device[k[use_primary]] = cust.device[ck[use_primary]]
        use_home = rng.random(len(k)) < cc.home_ip_share
        ip[k[use_home]] = cust.ip[ck[use_home]]
        s.update(customer=customer, device=device, country=country, ip=ip)
        s["session_id"] = obj([f"{self.tag}-s{i:07d}" for i in range(n)])

        # Clicks: one per tracked session landing.
        t = np.flatnonzero(s["tracked"])
        chans = obj(self.channels)[s["channel"][t]]
        camps = np.where(s["campaign"][t] >= 0, obj(self.campaigns + [None])[s["campaign"][t]], None)
        cust_ids = obj([f"cus-{c:06d}" if r else None for c, r in
                        zip(customer[t].tolist(), returning[t].tolist(), strict=True)])
        self.builder.add("click", s["ts"][t], obj([f"{self.tag}-clk-{i:07d}" for i in range(len(t))]),
                         session_id=s["session_id"][t], channel=chans, campaign=camps, customer_id=cust_ids,
                         country=obj(self.customers.countries)[country[t]],
                         device_id=obj([f"dev-{d:08x}" for d in device[t].tolist()]))

        o = np.flatnonzero(converts)
        c = customer[o]
        rng_o = self.rng("orders", "attributes")
        store = np.where(rng_o.random(len(o)) < 0.9, cust.store[c],
                         rng_o.choice(len(self.stores), len(o), p=self._p(cfg.orders.stores)))
        method = np.where(rng_o.random(len(o)) < 0.8, cust.method[c],
                          rng_o.choice(len(self.methods), len(o), p=self._p(cfg.orders.payment_methods)))
        tracked = s["tracked"][o]
        orders = self._new_orders(
            ts=s["order_ts"][o], customer=c, session=s["session_id"][o],
            channel=np.where(tracked, s["channel"][o], -1), campaign=np.where(tracked, s["campaign"][o], -1),
            store=store, country=country[o], device=device[o], ip=ip[o], method=method, card=cust.card[c])
        self._add_lines(orders, self.rng("orders", "lines"), mods)
        return orders

    def _new_orders(self, *, ts: np.ndarray, customer: np.ndarray, session: np.ndarray | None = None,
                    channel: np.ndarray | None = None, campaign: np.ndarray | None = None,
                    store: np.ndarray, country: np.ndarray, device: np.ndarray, ip: np.ndarray,
                    method: np.ndarray, card: np.ndarray, fraud: int = -1, forced_fail: np.ndarray | None = None,
                    return_rate: float = np.nan) -> Orders:
        n = len(ts)
        full = lambda v: np.full(n, v)  # noqa: E731
        return Orders(
            ts=np.asarray(ts, np.int64), customer=np.asarray(customer, np.int64),
            session=session if session is not None else obj(None, n),
            channel=channel if channel is not None else full(-1),
            campaign=campaign if campaign is not None else full(-1),
            store=np.asarray(store, np.int64), country=np.asarray(country, np.int64),
            device=np.asarray(device, np.int64), ip=np.asarray(ip, np.int64),
            method=np.asarray(method, np.int64), card=np.asarray(card, np.int64),
            fraud=full(fraud), forced_fail=forced_fail if forced_fail is not None else full(-1),
            return_rate=full(return_rate), line_order=np.empty(0, np.int64),
            line_product=np.empty(0, np.int64), line_qty=np.empty(0, np.int64),
            line_cents=np.empty(0, np.int64))

    def _add_lines(self, orders: Orders, rng: np.random.Generator, mods: dict[str, Any] | None,
                   qty_multiplier: float = 1.0) -> None:
        oc, cat = self.cfg.orders, self.catalogue
        n = len(orders)
        n_lines = 1 + np.minimum(rng.poisson(oc.extra_lines_mean, n), oc.max_lines - 1)
        line_order = np.repeat(np.arange(n), n_lines)
        product = rng.choice(len(cat.ids), size=len(line_order), p=cat.popularity)
        qty = 1 + rng.poisson(oc.extra_quantity_mean, len(line_order))
        qty = np.ceil(qty * qty_multiplier).astype(np.int64)
        mult = np.ones(len(line_order))
        if mods is not None:
            bucket = np.clip((orders.ts - self.grid.t0) // STEP, 0, self.grid.n - 1)
            mult = mods["price"][bucket][line_order]
            first = np.r_[True, line_order[1:] != line_order[:-1]]
            for a, b, prod, factor, share in mods["price_error"]:
                in_win = (orders.ts[line_order] >= a) & (orders.ts[line_order] < b)
                grab = in_win & first & (rng.random(len(line_order)) < share)
                product[grab] = prod
                mult = np.where(in_win & (product == prod), mult * factor, mult)
        orders.line_order, orders.line_product, orders.line_qty = line_order, product, qty
        orders.line_cents = np.round(cat.price_cents[product] * mult).astype(np.int64)
        self._merge_lines(orders)

    def _merge_lines(self, orders: Orders) -> None:
        """One line per product per order (quantities add up), lines grouped by order."""
        key = orders.line_order * len(self.catalogue.ids) + orders.line_product
        _, first, inv = np.unique(key, return_index=True, return_inverse=True)
        qty = np.bincount(inv, weights=orders.line_qty).astype(np.int64)
        orders.line_order, orders.line_product = orders.line_order[first], orders.line_product[first]
        orders.line_cents, orders.line_qty = orders.line_cents[first], qty

    # ------------------------------------------------------------------ stock
    def _stock(self, orders: Orders, mods: dict[str, Any]) -> Orders:
        """Hour-by-hour inventory: lines of out-of-stock products switch to a similar product
        or are lost; restocks arrive after a lead time; a stock-out incident blocks one product."""
        cc, cat, g = self.cfg.catalogue, self.catalogue, self.grid
        orders = orders.sorted()
        rng = self.rng("stock")
        P = len(cat.ids)
        # Expected units per day from the configured traffic: sizes inventory like a real buyer would.
        mean_conv = float(np.mean(list(self.cfg.conversion.by_channel.values())))
        units_day = (self.cfg.traffic.sessions_per_day * mean_conv * (1 + self.cfg.orders.extra_lines_mean)
                     * (1 + self.cfg.orders.extra_quantity_mean) * cat.popularity)
        units_day = np.maximum(units_day, 0.2)
        stock = np.ceil(units_day * cc.initial_stock_days * rng.uniform(0.6, 1.4, P)).astype(np.int64)
        threshold = np.ceil(units_day * cc.reorder_days).astype(np.int64)
        restock_qty = np.ceil(units_day * cc.restock_days).astype(np.int64)
        restock_at = np.full(P, -1)
        blocked_until = np.full(P, -1)
        n_hours = -(-g.n * STEP // 3600)
        tz = ZoneInfo(self.cfg.timezone)
        snapshot = [datetime.fromtimestamp(g.t0 + h * 3600, tz).hour == self.cfg.stock_snapshot_hour
                    for h in range(n_hours)]
        outs = {(a - g.t0) // 3600: (a, b, prod) for a, b, prod in mods["stockout"]}

        line_ts = orders.ts[orders.line_order]
        line_hour = (line_ts - g.t0) // 3600
        bounds = np.searchsorted(line_hour, np.arange(n_hours + 1))
        keep = np.ones(len(line_ts), dtype=bool)
        product = orders.line_product.copy()
        cents = orders.line_cents.copy()
        base_price = cat.price_cents[orders.line_product]
        ev = self.stock_events
        for h in range(n_hours):
            th = g.t0 + h * 3600
            arrive = np.flatnonzero((restock_at == h) & (blocked_until < h))
            if arrive.size:
                stock[arrive] += restock_qty[arrive]
                restock_at[arrive] = -1
                ev.extend((th + 90, int(p), int(stock[p]), "restock") for p in arrive)
            if h in outs:
                a, b, prod = outs[h]
                stock[prod] = 0
                end_h = -(-(b - g.t0) // 3600)
                blocked_until[prod] = end_h - 1
                restock_at[prod] = end_h
                ev.append((a, prod, 0, "adjustment"))
            if snapshot[h]:
                ev.extend((th + 30, p, int(stock[p]), "snapshot") for p in range(P))
            lo, hi = bounds[h], bounds[h + 1]
            if lo == hi:
                continue
            prods = product[lo:hi]
            oos = np.flatnonzero(stock[prods] <= 0)
            for i in oos.tolist():
                j = lo + i
                alt = np.flatnonzero((cat.category == cat.category[prods[i]]) & (stock > 0))
                if alt.size and rng.random() < cc.substitution_rate:
                    new = int(alt[rng.integers(alt.size)])
                    cents[j] = round(cents[j] * cat.price_cents[new] / max(base_price[j], 1))
                    product[j] = new
                else:
                    keep[j] = False
            sold = np.bincount(product[lo:hi][keep[lo:hi]], weights=orders.line_qty[lo:hi][keep[lo:hi]],
                               minlength=P).astype(np.int64)
            before = stock.copy()
            stock = np.maximum(stock - sold, 0)
            crossed = np.flatnonzero(((before > threshold) & (stock <= threshold)) | ((before > 0) & (stock == 0)))
            for p in crossed.tolist():
                ev.append((min(th + 3599, g.end - 1), p, int(stock[p]), "sale"))
                if restock_at[p] < 0:
                    restock_at[p] = h + int(rng.uniform(*cc.lead_time_days) * 24)
        self._threshold = threshold
        orders.line_product = product
        orders.line_cents = cents
        orders = self._drop_lines(orders, keep)
        self._merge_lines(orders)  # a substitute may already be in the basket
        return orders

    @staticmethod
    def _drop_lines(orders: Orders, keep: np.ndarray) -> Orders:
        for n in ("line_order", "line_product", "line_qty", "line_cents"):
            setattr(orders, n, getattr(orders, n)[keep])
        has = np.bincount(orders.line_order, minlength=len(orders)) > 0
        if has.all():
            return orders
        remap = np.cumsum(has) - 1
        kw = {n: getattr(orders, n)[has] for n in Orders.__dataclass_fields__ if not n.startswith("line_")}
        return Orders(**kw, line_order=remap[orders.line_order], line_product=orders.line_product,
                      line_qty=orders.line_qty, line_cents=orders.line_cents)

    def _emit_stock(self) -> None:
        if not self.stock_events:
            return
        ev = sorted(self.stock_events)
        ts = np.array([e[0] for e in ev], np.int64)
        prod = [e[1] for e in ev]
        self.builder.add(
            "stock", ts, obj([f"{self.tag}-stk-{i:06d}" for i in range(len(ev))]),
            product_id=obj([self.catalogue.ids[p] for p in prod]),
            stock_level=obj([e[2] for e in ev]), threshold=obj([int(self._threshold[p]) for p in prod]),
            attributes=obj([{"reason": e[3]} for e in ev]))

    # ------------------------------------------------------------------ fraud
    def _fraud_label(self, ident: str, spec: Any) -> int:
        self.label_specs.append((ident, spec))
        return len(self.label_specs) - 1

    def _fraud_orders(self, normal: Orders) -> list[Orders]:
        out: list[Orders] = []
        cust, g, cat = self.customers, self.grid, self.catalogue
        aov = float(np.median(normal.totals()[0])) if len(normal) else 5000.0
        expensive = np.argsort(-cat.price_cents, kind="stable")[:10]
        store_p = self._p(self.cfg.orders.stores)
        card_method = self.methods.index("card") if "card" in self.methods else 0
        for ident, spec in self.injected:
            if not isinstance(spec, C.CardTesting | C.Ring | C.HighAmountNewCustomer | C.AccountTakeover
                              | C.ReturnAbuse):
                continue
            rng = self.rng("fraud", ident)
            a, b = g.window(spec.at, spec.duration)
            label = self._fraud_label(ident, spec)
            countries = list(self.cfg.customers.countries)
            if isinstance(spec, C.CardTesting):
                n = spec.attempts
                ts = np.sort(rng.integers(a, b, n))
                country = cust.country_index(countries[int(rng.integers(len(countries)))])
                guests = cust.add(country=np.full(3, country), device=cust.fresh_devices(3),
                                  ip=rng.integers(0, 1 << 31, 3), store=np.full(3, 0), method=np.full(3, card_method))
                who = guests[rng.integers(0, 3, n)]
                device = np.full(n, cust.device[guests[0]]) if spec.share_device else cust.fresh_devices(n)
                ip = np.full(n, cust.ip[guests[0]]) if spec.share_ip else rng.integers(0, 1 << 31, n)
                o = self._new_orders(ts=ts, customer=who, store=np.full(n, int(rng.choice(len(self.stores), p=store_p))),
                                     country=np.full(n, country), device=device, ip=ip,
                                     method=np.full(n, card_method), card=cust.fresh_cards(n), fraud=label,
                                     forced_fail=(rng.random(n) < spec.failure_rate).astype(np.int64))
                cheap = np.argsort(cat.price_cents, kind="stable")[:3]
                o.line_order = np.arange(n)
                o.line_product = cheap[rng.integers(0, 3, n)]
                o.line_qty = np.ones(n, np.int64)
                o.line_cents = (rng.uniform(*spec.amount_range, n) * 100).astype(np.int64)
                out.append(o)
            elif isinstance(spec, C.Ring):
                k = spec.customers
                country = int(rng.choice(len(countries), p=self._p(self.cfg.customers.countries)))
                shared_ip = int(rng.integers(0, 1 << 31))
                shared_dev = int(cust.fresh_devices(1)[0])
                ring = cust.add(country=np.full(k, country),
                                device=np.full(k, shared_dev) if spec.type == "device_ring" else cust.fresh_devices(k),
                                ip=np.full(k, shared_ip) if spec.type == "ip_ring" else rng.integers(0, 1 << 31, k),
                                store=rng.choice(len(self.stores), k, p=store_p),
                                method=np.full(k, card_method))
                per = rng.integers(spec.orders_per_customer[0], spec.orders_per_customer[1] + 1, k)
                who = np.repeat(ring, per)
                ts = rng.integers(a, b, len(who))
                o = self._new_orders(ts=ts, customer=who, store=cust.store[who], country=cust.country[who],
                                     device=cust.device[who], ip=cust.ip[who], method=cust.method[who],
                                     card=cust.card[who], fraud=label)
                self._add_lines(o, rng, None, qty_multiplier=spec.amount_multiplier)
                out.append(o)
            elif isinstance(spec, C.HighAmountNewCustomer):
                country = cust.country_index(spec.country) if spec.country else int(
                    rng.choice(len(countries), p=self._p(self.cfg.customers.countries)))
                who = cust.add(country=np.array([country]), device=cust.fresh_devices(1),
                               ip=rng.integers(0, 1 << 31, 1), store=np.array([0]), method=np.array([card_method]))
                o = self._new_orders(ts=np.array([int(rng.integers(a, max(b, a + 1)))]), customer=who,
                                     store=cust.store[who], country=cust.country[who], device=cust.device[who],
                                     ip=cust.ip[who], method=cust.method[who], card=cust.card[who], fraud=label)
                self._expensive_lines(o, rng, expensive, spec.amount_multiplier * aov)
                out.append(o)
            elif isinstance(spec, C.AccountTakeover):
                victim = int(rng.integers(0, self.cfg.customers.initial_customers))
                victim_arr = np.full(spec.history_orders, victim)
                # History first (legit, usual device/IP), so "unusual for this customer" is learnable.
                hist_ts = np.sort(rng.integers(g.t0, max(a - 3600, g.t0 + 1), spec.history_orders))
                h = self._new_orders(ts=hist_ts, customer=victim_arr, store=cust.store[victim_arr],
                                     country=cust.country[victim_arr], device=cust.device[victim_arr],
                                     ip=cust.ip[victim_arr], method=cust.method[victim_arr],
                                     card=cust.card[victim_arr])
                self._add_lines(h, rng, None)
                out.append(h)
                n = spec.orders
                attacker_country = cust.country_index(spec.country)
                hist_total = float(np.mean(h.totals()[0])) if len(h) else aov
                o = self._new_orders(ts=np.sort(rng.integers(a, b, n)), customer=np.full(n, victim),
                                     store=np.full(n, cust.store[victim]), country=np.full(n, attacker_country),
                                     device=np.full(n, cust.fresh_devices(1)[0]),
                                     ip=np.full(n, rng.integers(0, 1 << 31)), method=np.full(n, card_method),
                                     card=np.full(n, cust.card[victim]), fraud=label)
                self._expensive_lines(o, rng, expensive, spec.amount_multiplier * hist_total)
                out.append(o)
            elif isinstance(spec, C.ReturnAbuse):
                k = spec.customers
                abuser_country = rng.choice(len(countries), k, p=self._p(self.cfg.customers.countries))
                abusers = cust.add(country=abuser_country, device=cust.fresh_devices(k), ip=rng.integers(0, 1 << 31, k),
                                   store=rng.choice(len(self.stores), k, p=store_p),
                                   method=rng.choice(len(self.methods), k, p=self._p(self.cfg.orders.payment_methods)))
                who = np.repeat(abusers, spec.orders_per_customer)
                ts = rng.integers(a, max(a + 1, b - 5 * 86400), len(who))
                o = self._new_orders(ts=ts, customer=who, store=cust.store[who], country=cust.country[who],
                                     device=cust.device[who], ip=cust.ip[who], method=cust.method[who],
                                     card=cust.card[who], fraud=label, forced_fail=np.zeros(len(who), np.int64),
                                     return_rate=spec.return_rate)
                self._add_lines(o, rng, None)
                out.append(o)
        return out

    def _expensive_lines(self, o: Orders, rng: np.random.Generator, expensive: np.ndarray, target: float) -> None:
        cat = self.catalogue
        lo, lp, lq = [], [], []
        for i in range(len(o)):
            total = 0.0
            picks = rng.permutation(expensive)
            j = 0
            while total < target and j < 40:
                p = int(picks[j % len(picks)])
                q = 1 + int(rng.poisson(0.5))
                lo.append(i)
                lp.append(p)
                lq.append(q)
                total += cat.price_cents[p] * q
                j += 1
        o.line_order, o.line_product, o.line_qty = np.array(lo), np.array(lp), np.array(lq)
        o.line_cents = cat.price_cents[o.line_product]
        self._merge_lines(o)

    def _mark_compromised_stores(self, orders: Orders) -> None:
        for ident, spec in self.injected:
            if not isinstance(spec, C.CompromisedStore):
                continue
            rng = self.rng("fraud", ident)
            a, b = self.grid.window(spec.at, spec.duration)
            label = self._fraud_label(ident, spec)
            hit = ((orders.store == self.stores.index(spec.store_id)) & (orders.ts >= a) & (orders.ts < b)
                   & (orders.fraud < 0) & (rng.random(len(orders)) < spec.fraud_share))
            orders.fraud[hit] = label

    # ------------------------------------------------------------------ payments, statuses, returns
    def _emit_orders(self, orders: Orders) -> dict[str, Any]:
        cfg, g, cust, cat = self.cfg, self.grid, self.customers, self.catalogue
        oc = cfg.orders
        rng = self.rng("payments")
        n = len(orders)
        order_ids = obj([f"{self.tag}-O{i:07d}" for i in range(n)])
        cust_ids = obj([f"cus-{c:06d}" for c in orders.customer.tolist()])
        cents, qty = orders.totals()
        main = orders.main_product()
        stores = obj(self.stores)[orders.store]
        countries = obj(cust.countries)[orders.country]
        chans = np.where(orders.channel >= 0, obj(self.channels + [None])[orders.channel], None)
        camps = np.where(orders.campaign >= 0, obj(self.campaigns + [None])[orders.campaign], None)
        line_cents_str = cents_to_str(orders.line_cents)
        bounds = np.searchsorted(orders.line_order, np.arange(n + 1))
        items = obj([[{"product_id": cat.ids[p], "quantity": int(q), "unit_price": c}
                      for p, q, c in zip(orders.line_product[lo:hi].tolist(), orders.line_qty[lo:hi].tolist(),
                                         line_cents_str[lo:hi].tolist(), strict=True)]
                     for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)])
        items = obj([{"items": it} for it in items])
        currency = cfg.currency
        amount = cents_to_str(cents)
        self.builder.add("order", orders.ts, obj([f"{self.tag}-ord-{i:07d}" for i in range(n)]),
                         customer_id=cust_ids, session_id=orders.session, order_id=order_ids, channel=chans,
                         campaign=camps, product_id=obj(cat.ids)[main], store_id=stores, country=countries,
                         amount=amount, currency=currency, quantity=obj(qty.tolist()), attributes=items)

        # Payments: a first attempt, and for natural failures sometimes a retry.
        first_ts = orders.ts + rng.integers(3, 40, n)
        natural_fail = rng.random(n) < oc.payment_failure_rate
        fail1 = np.where(orders.forced_fail >= 0, orders.forced_fail == 1, natural_fail)
        retry = fail1 & (orders.forced_fail < 0) & (rng.random(n) < oc.retry_rate)
        retry_ts = first_ts + rng.integers(45, 300, n)
        retry_ok = rng.random(n) < oc.retry_success_rate
        p_order = np.concatenate([np.arange(n), np.flatnonzero(retry)])
        p_ts = np.concatenate([first_ts, retry_ts[retry]])
        p_fail = np.concatenate([fail1, ~retry_ok[retry]])
        p_attempt = np.concatenate([np.ones(n, np.int64), np.full(int(retry.sum()), 2)])
        srt = np.lexsort((p_attempt, p_order, p_ts))
        p_order, p_ts, p_fail, p_attempt = p_order[srt], p_ts[srt], p_fail[srt], p_attempt[srt]
        inside = p_ts < g.end
        p_order, p_ts, p_fail, p_attempt = p_order[inside], p_ts[inside], p_fail[inside], p_attempt[inside]
        pay_ids = obj([f"{self.tag}-pay-{i:07d}" for i in range(len(p_order))])
        ip_str = np.empty(n, dtype=object)
        for ci, cname in enumerate(cust.countries):
            sel = np.flatnonzero(orders.country == ci)
            if sel.size:
                ip_str[sel] = _ip_str(cname, orders.ip[sel])
        hashes = {int(c): _email_hash(int(c)) for c in np.unique(orders.customer).tolist()}
        email = obj([hashes[c] for c in orders.customer.tolist()])
        self.builder.add(
            "payment", p_ts, pay_ids, customer_id=cust_ids[p_order], order_id=order_ids[p_order],
            channel=chans[p_order], campaign=camps[p_order], store_id=stores[p_order],
            country=countries[p_order], amount=amount[p_order], currency=currency,
            status=np.where(p_fail, "failed", "succeeded").astype(object), ip=ip_str[p_order],
            device_id=obj([f"dev-{d:08x}" for d in orders.device[p_order].tolist()]),
            payment_method=obj(self.methods)[orders.method[p_order]], email_hash=email[p_order],
            attributes=obj([{"card_fingerprint": f"card-{c:07x}", "attempt": int(k)} for c, k in
                            zip(orders.card[p_order].tolist(), p_attempt.tolist(), strict=True)]))

        # Status progression.
        paid = ~fail1 | (retry & retry_ok)
        paid_ts = np.where(~fail1, first_ts, retry_ts)
        last_try = np.where(retry, retry_ts, first_ts)
        h = 3600
        confirm = paid_ts + (rng.uniform(*oc.confirm_delay_minutes, n) * 60).astype(np.int64)
        cancel_by_customer = paid & (rng.random(n) < oc.cancel_rate)
        cancel_ts = np.where(paid, confirm + rng.integers(h, 20 * h, n), last_try + rng.integers(600, h, n))
        shipped = confirm + (rng.uniform(*oc.ship_delay_hours, n) * h).astype(np.int64)
        delivered = shipped + (rng.uniform(*oc.deliver_delay_hours, n) * h).astype(np.int64)
        ships = paid & ~cancel_by_customer
        st_parts = [(np.arange(n), orders.ts + 1, "pending"),
                    (np.flatnonzero(paid), confirm[paid], "confirmed"),
                    (np.flatnonzero(~ships), cancel_ts[~ships], "cancelled"),
                    (np.flatnonzero(ships), shipped[ships], "shipped"),
                    (np.flatnonzero(ships), delivered[ships], "delivered")]
        s_order = np.concatenate([p[0] for p in st_parts])
        s_ts = np.concatenate([p[1] for p in st_parts])
        s_status = np.concatenate([np.full(len(p[0]), p[2], dtype=object) for p in st_parts])
        srt = np.lexsort((s_order, s_ts))
        s_order, s_ts, s_status = s_order[srt], s_ts[srt], s_status[srt]
        inside = s_ts < g.end
        s_order, s_ts, s_status = s_order[inside], s_ts[inside], s_status[inside]
        self.builder.add("order_status", s_ts, obj([f"{self.tag}-sts-{i:07d}" for i in range(len(s_ts))]),
                         order_id=order_ids[s_order], customer_id=cust_ids[s_order], store_id=stores[s_order],
                         status=s_status)

        # Returns: per delivered line, at the category's rate (abusers: their own, and fast).
        rr = self.rng("returns")
        lo = orders.line_order
        delivered_ok = ships & (delivered < g.end)
        own_rate = orders.return_rate[lo]
        rate = np.where(np.isnan(own_rate), cat.return_rate[orders.line_product], own_rate)
        ret = delivered_ok[lo] & (rr.random(len(lo)) < rate)
        abuser = ~np.isnan(own_rate)
        delay_days = np.where(abuser, rr.uniform(1, 3, len(lo)), rr.uniform(*oc.return_delay_days, len(lo)))
        r_ts = delivered[lo] + (delay_days * 86400).astype(np.int64)
        r = np.flatnonzero(ret & (r_ts < g.end))
        r = r[np.lexsort((r, r_ts[r]))]
        r_ids = obj([f"{self.tag}-ret-{i:06d}" for i in range(len(r))])
        ro = lo[r]
        self.builder.add("return", r_ts[r], r_ids, order_id=order_ids[ro], customer_id=cust_ids[ro],
                         channel=chans[ro], campaign=camps[ro], store_id=stores[ro], country=countries[ro],
                         product_id=obj(cat.ids)[orders.line_product[r]],
                         amount=cents_to_str(orders.line_cents[r] * orders.line_qty[r]), currency=currency,
                         quantity=obj(orders.line_qty[r].tolist()),
                         attributes=obj([{"reason": _RETURN_REASONS[i]} for i in
                                         rr.integers(0, len(_RETURN_REASONS), len(r)).tolist()]))
        return {"pay_ids": pay_ids, "pay_ts": p_ts, "pay_fraud": orders.fraud[p_order],
                "ret_ids": r_ids, "ret_ts": r_ts[r], "ret_fraud": orders.fraud[ro], "ret_customer": cust_ids[ro],
                "customer_ids": cust_ids, "order_customer": orders.customer, "order_fraud": orders.fraud,
                "order_store": stores, "ip": ip_str, "device": orders.device}

    # ------------------------------------------------------------------ labels
    def _finish_labels(self, t: dict[str, Any]) -> tuple[list[Label], list[EventLabel], dict[str, str]]:
        delay = parse_duration(self.cfg.labels.chargeback_delay)
        truth: dict[str, str] = {}
        event_labels: list[EventLabel] = []
        labels = list(self.labels)
        pay_ids, ret_ids = t["pay_ids"].tolist(), t["ret_ids"].tolist()
        # Return abuse is fraud on the returns; the abusers' payments themselves are genuine.
        is_return_fraud = np.array([isinstance(s, C.ReturnAbuse) for _, s in self.label_specs] + [False])
        pay_fraud = (t["pay_fraud"] >= 0) & ~is_return_fraud[t["pay_fraud"]]
        ret_fraud = (t["ret_fraud"] >= 0) & is_return_fraud[t["ret_fraud"]]
        for eid, f in zip(pay_ids, pay_fraud.tolist(), strict=True):
            truth[eid] = "fraud" if f else "legit"
        for eid, f in zip(ret_ids, ret_fraud.tolist(), strict=True):
            truth[eid] = "fraud" if f else "legit"
        for li, (ident, spec) in enumerate(self.label_specs):
            if isinstance(spec, C.ReturnAbuse):
                sel = np.flatnonzero(t["ret_fraud"] == li)
                ids, ts = [ret_ids[i] for i in sel], t["ret_ts"][sel]
            else:
                sel = np.flatnonzero(t["pay_fraud"] == li)
                ids, ts = [pay_ids[i] for i in sel], t["pay_ts"][sel]
            for eid, e_ts in zip(ids, ts.tolist(), strict=True):
                event_labels.append(EventLabel(event_id=eid, label="fraud", known_at=_dt(e_ts) + delay,
                                               incident_id=ident))
            labels.extend(self._fraud_incident_labels(ident, spec, li, ids, ts, delay, t))
        if self.cfg.labels.emit_legit_labels:
            for eid, e_ts, f in zip(pay_ids, t["pay_ts"].tolist(), pay_fraud.tolist(), strict=True):
                if not f:
                    event_labels.append(EventLabel(event_id=eid, label="legit", known_at=_dt(e_ts) + delay))
        event_labels.sort(key=lambda e: (e.known_at, e.event_id))
        labels.sort(key=lambda lab: (lab.start, lab.incident_id))
        return labels, event_labels, truth

    def _fraud_incident_labels(self, ident: str, spec: Any, li: int, ids: list[str], ts: np.ndarray,
                               delay: timedelta, t: dict[str, Any]) -> list[Label]:
        if not ids:
            return []
        sel = np.flatnonzero(t["ret_fraud"] == li)
        fraud_orders = np.flatnonzero(t["order_fraud"] == li)
        first = fraud_orders[0] if fraud_orders.size else 0
        customer = t["customer_ids"][first]
        metric: str | None = None
        related: tuple[str, ...] = ()
        dims: dict[str, str] = {}
        if isinstance(spec, C.CardTesting):
            entity = t["ip"][first] if spec.share_ip else f"dev-{t['device'][first]:08x}"
            metric, related = "payment_failure_rate", ("payments", "orders")
        elif isinstance(spec, C.Ring):
            entity = t["ip"][first] if spec.type == "ip_ring" else f"dev-{t['device'][first]:08x}"
        elif isinstance(spec, C.CompromisedStore):
            entity, dims = spec.store_id, {"store_id": spec.store_id}
        else:
            entity = customer
        base = dict(type=spec.type, kind="fraud", metric=metric, related_metrics=related, dimensions=dims)
        if isinstance(spec, C.ReturnAbuse):
            # One label per abusing customer: each is an entity a detector should find.
            out = []
            ret_customer = t["ret_customer"][sel]
            for j, cid in enumerate(sorted(set(ret_customer.tolist()))):
                ks = np.flatnonzero(ret_customer == cid)
                out.append(Label(incident_id=f"{ident}:{j}", start=_dt(int(ts[ks].min())),
                                 end=_dt(int(ts[ks].max())), entity=cid, event_ids=tuple(ids[k] for k in ks),
                                 known_at=_dt(int(ts[ks].max())) + delay, attributes={"returns": len(ks)},
                                 **base))  # type: ignore[arg-type]
            return out
        return [Label(incident_id=ident, start=_dt(int(ts.min())), end=_dt(int(ts.max())), entity=entity,
                      event_ids=tuple(ids), known_at=_dt(int(ts.max())) + delay,
                      attributes={"events": len(ids)}, **base)]  # type: ignore[arg-type]


def _dt(epoch: int) -> datetime:
    return datetime.fromtimestamp(int(epoch), UTC)


def _iso(epoch: int) -> str:
    return _dt(epoch).isoformat()
