"""Typed scenario configuration, loaded from YAML.

Every knob has a default that describes an ordinary mid-size D2C shop, so a
scenario file only states what makes it different (length, size, incidents).
Times inside a scenario are written relative to its start ("1d14h" = day 1,
14:00 local when the scenario starts at local midnight) so a scenario can be
moved in the calendar without rewriting every incident.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
CHANNELS = ("organic", "paid_search", "social", "email", "affiliate")

_DURATION_RE = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)w)?\s*(?:(\d+(?:\.\d+)?)d)?\s*(?:(\d+(?:\.\d+)?)h)?"
                          r"\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$")


def parse_duration(text: str | int | float) -> timedelta:
    """'1d14h30m', '90s', '2w', or a number of seconds."""
    if isinstance(text, int | float):
        return timedelta(seconds=float(text))
    match = _DURATION_RE.match(str(text))
    if not match or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r} (use e.g. '1d14h', '90m', '30s')")
    w, d, h, m, s = (float(g) if g else 0.0 for g in match.groups())
    return timedelta(weeks=w, days=d, hours=h, minutes=m, seconds=s)


class _Model(BaseModel):
    # Typos in a scenario file must fail loudly, not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Category(_Model):
    name: str
    weight: float = 1.0
    price_min: float
    price_max: float
    cost_ratio: tuple[float, float] = (0.35, 0.6)
    return_rate: float = 0.08


class CatalogueConfig(_Model):
    n_products: int = Field(default=60, ge=3)
    categories: list[Category] = Field(default_factory=lambda: [
        Category(name="apparel", weight=3.0, price_min=15, price_max=120, return_rate=0.18),
        Category(name="footwear", weight=1.5, price_min=45, price_max=180, return_rate=0.15),
        Category(name="accessories", weight=2.0, price_min=3, price_max=45, return_rate=0.04),
        Category(name="home", weight=1.5, price_min=12, price_max=160, return_rate=0.05),
        Category(name="beauty", weight=1.5, price_min=6, price_max=70, return_rate=0.03),
    ])
    # Zipf-like popularity: a few best sellers carry most units, as in real shops.
    popularity_exponent: float = 1.05
    initial_stock_days: float = 24.0
    reorder_days: float = 6.0
    restock_days: float = 21.0
    lead_time_days: tuple[float, float] = (2.0, 5.0)
    substitution_rate: float = 0.4  # share of out-of-stock lines that switch to a similar product


class CustomerConfig(_Model):
    initial_customers: int = Field(default=20000, ge=10)
    countries: dict[str, float] = Field(default_factory=lambda: {
        "FR": 0.38, "DE": 0.22, "GB": 0.14, "ES": 0.1, "IT": 0.08, "NL": 0.05, "BE": 0.03})
    returning_share: dict[str, float] = Field(default_factory=lambda: {
        "organic": 0.4, "paid_search": 0.25, "social": 0.2, "email": 0.9, "affiliate": 0.3})
    primary_device_share: float = 0.85  # how often a known customer uses their usual device
    home_ip_share: float = 0.7


class Peak(_Model):
    date: str  # "MM-DD", every year
    width_days: float = 2.0
    multiplier: float = 2.0


class CampaignConfig(_Model):
    name: str
    channel: Literal["organic", "paid_search", "social", "email", "affiliate"]
    share: float = 1.0  # share of its channel's sessions
    ctr: float = Field(0.02, gt=0, le=1)


class TrafficConfig(_Model):
    sessions_per_day: float = Field(default=4000, gt=0)
    channel_shares: dict[str, float] = Field(default_factory=lambda: {
        "organic": 0.36, "paid_search": 0.24, "social": 0.17, "email": 0.1, "affiliate": 0.13})
    # Relative sessions per local hour 0..23 (normalised to mean 1).
    daily_profile: list[float] = Field(default_factory=lambda: [
        0.3, 0.18, 0.12, 0.09, 0.09, 0.13, 0.3, 0.55, 0.8, 0.95, 1.05, 1.15,
        1.28, 1.22, 1.12, 1.1, 1.15, 1.28, 1.5, 1.78, 1.95, 1.85, 1.35, 0.75])
    weekly_profile: list[float] = Field(default_factory=lambda: [1.0, 0.96, 0.97, 0.99, 1.04, 1.08, 1.12])
    yearly_peaks: list[Peak] = Field(default_factory=lambda: [
        Peak(date="11-29", width_days=2.5, multiplier=2.6),
        Peak(date="12-15", width_days=6.0, multiplier=1.5),
        Peak(date="01-10", width_days=5.0, multiplier=1.4),
    ])
    monthly_growth: float = 0.03
    # Day-to-day noise per traffic source (lognormal sigma): real traffic is overdispersed.
    day_noise: float = 0.06
    campaigns: list[CampaignConfig] = Field(default_factory=lambda: [
        CampaignConfig(name="brand_search", channel="paid_search", share=0.55, ctr=0.06),
        CampaignConfig(name="generic_search", channel="paid_search", share=0.45, ctr=0.025),
        CampaignConfig(name="social_prospecting", channel="social", share=0.6, ctr=0.009),
        CampaignConfig(name="social_retargeting", channel="social", share=0.4, ctr=0.018),
        CampaignConfig(name="newsletter", channel="email", share=1.0, ctr=0.035),
        CampaignConfig(name="affiliate_network", channel="affiliate", share=1.0, ctr=0.012),
    ])

    @field_validator("daily_profile")
    @classmethod
    def _24_hours(cls, v: list[float]) -> list[float]:
        if len(v) != 24 or min(v) < 0:
            raise ValueError("daily_profile needs 24 non-negative values")
        return v

    @field_validator("weekly_profile")
    @classmethod
    def _7_days(cls, v: list[float]) -> list[float]:
        if len(v) != 7 or min(v) < 0:
            raise ValueError("weekly_profile needs 7 non-negative values (Monday first)")
        return v


class ConversionConfig(_Model):
    by_channel: dict[str, float] = Field(default_factory=lambda: {
        "organic": 0.03, "paid_search": 0.028, "social": 0.012, "email": 0.045, "affiliate": 0.026})
    returning_multiplier: float = 1.4
    # Evening shoppers convert better than lunch-break browsers; weekends slightly better.
    daily_amplitude: float = 0.15
    peak_hour: float = 20.0
    weekend_multiplier: float = 1.05
    # Share of a yearly traffic peak that also lifts conversion (exponent on the peak multiplier).
    peak_conversion_exponent: float = 0.4


class OrderConfig(_Model):
    extra_lines_mean: float = 0.7  # lines per order = 1 + Poisson(mean)
    extra_quantity_mean: float = 0.15
    max_lines: int = 6
    payment_failure_rate: float = 0.035
    retry_rate: float = 0.55
    retry_success_rate: float = 0.85
    payment_methods: dict[str, float] = Field(default_factory=lambda: {
        "card": 0.62, "paypal": 0.22, "apple_pay": 0.1, "klarna": 0.06})
    stores: dict[str, float] = Field(default_factory=lambda: {
        "web-eu": 0.55, "web-uk": 0.15, "app-ios": 0.18, "app-android": 0.12})
    cancel_rate: float = 0.02
    confirm_delay_minutes: tuple[float, float] = (1.0, 15.0)
    ship_delay_hours: tuple[float, float] = (10.0, 48.0)
    deliver_delay_hours: tuple[float, float] = (24.0, 96.0)
    return_delay_days: tuple[float, float] = (2.0, 14.0)


# --- incidents (KPI and stock) ---------------------------------------------------------

class _Injected(_Model):
    id: str | None = None
    at: str  # offset from the scenario start, e.g. "1d14h"
    duration: str = "2h"

    @field_validator("at", "duration")
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration(v)
        return v


class FlashSale(_Injected):
    type: Literal["flash_sale"]
    traffic_multiplier: float = 3.0
    conversion_multiplier: float = 1.8
    discount: float = 0.3
    channels: list[str] | None = None  # None = every channel


class CheckoutOutage(_Injected):
    type: Literal["checkout_outage"]
    residual: float = 0.02  # share of normal conversions that still get through


class CampaignBreak(_Injected):
    type: Literal["campaign_break"]
    campaign: str
    ctr_multiplier: float = 0.08


class TrackingLoss(_Injected):
    type: Literal["tracking_loss"]
    channel: str


class SlowDecline(_Injected):
    type: Literal["slow_decline"]
    magnitude: float = 0.4  # conversion falls linearly by this share over `duration`
    hold: str = "2d"  # then stays low this long before recovering
    channels: list[str] | None = None


class PriceError(_Injected):
    type: Literal["price_error"]
    product_rank: int = 5  # popularity rank of the mispriced product (0 = best seller)
    price_factor: float = 0.1
    demand_share: float = 0.35  # share of orders in the window that grab the bargain


class Stockout(_Injected):
    type: Literal["stockout"]
    product_rank: int = 0


Incident = Annotated[FlashSale | CheckoutOutage | CampaignBreak | TrackingLoss | SlowDecline
                     | PriceError | Stockout, Field(discriminator="type")]


# --- fraud --------------------------------------------------------------------------

class CardTesting(_Injected):
    type: Literal["card_testing"]
    duration: str = "40m"
    attempts: int = 80
    failure_rate: float = 0.85
    amount_range: tuple[float, float] = (1.0, 6.0)
    share_ip: bool = True
    share_device: bool = True


class Ring(_Injected):
    type: Literal["ip_ring", "device_ring"]
    duration: str = "1d"
    customers: int = 6
    orders_per_customer: tuple[int, int] = (1, 3)
    amount_multiplier: float = 1.6


class HighAmountNewCustomer(_Injected):
    type: Literal["high_amount_new_customer"]
    duration: str = "1m"
    amount_multiplier: float = 12.0
    country: str | None = None


class AccountTakeover(_Injected):
    type: Literal["account_takeover"]
    duration: str = "1h"
    orders: int = 2
    history_orders: int = 3
    amount_multiplier: float = 6.0
    country: str = "RO"


class ReturnAbuse(_Injected):
    type: Literal["return_abuse"]
    duration: str = "3w"
    customers: int = 3
    orders_per_customer: int = 6
    return_rate: float = 0.92


class CompromisedStore(_Injected):
    """A store or marketplace merchant whose payments are partly fraudulent while looking
    ordinary in amount and velocity: only chargeback labels reveal it."""
    type: Literal["compromised_store"]
    duration: str = "3w"
    store_id: str
    fraud_share: float = 0.3


Fraud = Annotated[CardTesting | Ring | HighAmountNewCustomer | AccountTakeover | ReturnAbuse
                  | CompromisedStore, Field(discriminator="type")]


class LabelConfig(_Model):
    # Chargebacks reach the merchant days after the payment; `known_at` carries that delay.
    chargeback_delay: str = "7d"
    # Event-level labels for legit payments too (a "legit" feed), as some issuers confirm.
    emit_legit_labels: bool = False


class ScenarioConfig(_Model):
    name: str
    description: str = ""
    seed: int = 42
    start: datetime
    days: float = Field(gt=0)
    timezone: str = "Europe/Paris"
    currency: str = "EUR"
    catalogue: CatalogueConfig = CatalogueConfig()
    customers: CustomerConfig = CustomerConfig()
    traffic: TrafficConfig = TrafficConfig()
    conversion: ConversionConfig = ConversionConfig()
    orders: OrderConfig = OrderConfig()
    incidents: list[Incident] = Field(default_factory=list)
    fraud: list[Fraud] = Field(default_factory=list)
    labels: LabelConfig = LabelConfig()
    stock_snapshot_hour: int = Field(1, ge=0, le=23)  # local hour of the daily stock feed

    @field_validator("start")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("start needs a UTC offset, e.g. 2024-10-07T00:00:00+02:00")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        ZoneInfo(v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ScenarioConfig:
        channels = set(self.traffic.channel_shares)
        if not channels <= set(CHANNELS):
            raise ValueError(f"unknown channels {sorted(channels - set(CHANNELS))}")
        if set(self.conversion.by_channel) != channels or set(self.customers.returning_share) != channels:
            raise ValueError("conversion.by_channel and customers.returning_share need every channel")
        campaigns = {c.name for c in self.traffic.campaigns}
        if len(campaigns) != len(self.traffic.campaigns):
            raise ValueError("campaign names must be unique")
        ids = [ident for ident, _ in self.injected()]
        for inc in [*self.incidents, *self.fraud]:
            if isinstance(inc, CampaignBreak) and inc.campaign not in campaigns:
                raise ValueError(f"campaign_break: unknown campaign {inc.campaign!r}")
            if isinstance(inc, TrackingLoss) and inc.channel not in channels:
                raise ValueError(f"tracking_loss: unknown channel {inc.channel!r}")
            if isinstance(inc, FlashSale | SlowDecline) and inc.channels and not set(inc.channels) <= channels:
                raise ValueError(f"{inc.type}: unknown channels {inc.channels}")
            if isinstance(inc, PriceError | Stockout) and inc.product_rank >= self.catalogue.n_products:
                raise ValueError(f"{inc.type}: product_rank beyond the catalogue")
            if isinstance(inc, CompromisedStore) and inc.store_id not in self.orders.stores:
                raise ValueError(f"compromised_store: unknown store {inc.store_id!r}")
            if parse_duration(inc.at) >= timedelta(days=self.days):
                raise ValueError(f"{inc.type} starts after the scenario ends")
        if len(set(ids)) != len(ids):
            raise ValueError("incident/fraud ids must be unique")
        return self

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)

    def injected(self) -> list[tuple[str, _Injected]]:
        """(id, spec) for every incident and fraud pattern, ids defaulted by position."""
        return [(inc.id or f"{inc.type}-{i}", inc) for i, inc in enumerate([*self.incidents, *self.fraud])]


def load_config(path_or_name: str | Path, **overrides: object) -> ScenarioConfig:
    """Load a scenario by file path or by name from `simulator/scenarios/` ("small").

    `overrides` replace top-level keys (e.g. seed=7, days=1) before validation.
    """
    path = Path(path_or_name)
    if path.suffix not in (".yaml", ".yml"):
        # A bare name is a bundled scenario (even if a directory of that name exists in the cwd).
        path = SCENARIO_DIR / f"{path_or_name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no scenario {path_or_name!r}; known: {known}")
    with path.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    data.update(overrides)
    return ScenarioConfig.model_validate(data)


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
