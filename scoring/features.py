"""The transaction feature contract: every feature the enrichment computes, its meaning and dtype.

One list, used by the enrichment (column order), the rules engine (which names a rule may use and
with which value type), the detectors (default numeric inputs) and the reason texts (`label`).

Conventions, so that a rule threshold reads the way an analyst expects:
- velocity and distinct counts INCLUDE the current event ("the 6th payment in the hour" has
  `cust_count_1h == 6`); windows are sliding, (t - w, t] in event time;
- velocity is kept per event type: payments count payments, orders count orders, so a tenant that
  sends both an order and its payment does not see every purchase twice;
- failed-payment streaks count the failed payments immediately BEFORE this event (a success
  after ten failures is the interesting case);
- amounts are in the tenant currency (converted with the rate table given to the enrichment);
- `new_device` / `new_ip` / `new_country` are 1 only for a customer that has history: a
  first-time customer has everything new, which `is_new_customer` already says;
- events without a customer id are guest checkouts: no customer history, `is_new_customer == 1`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Dtype = Literal["float", "int", "bool", "str"]


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    dtype: Dtype
    label: str  # short analyst wording used in reason texts
    meaning: str


def _f(name: str, dtype: Dtype, label: str, meaning: str) -> FeatureSpec:
    return FeatureSpec(name, dtype, label, meaning)


_VELOCITY = [
    _f(f"{ent}_{what}_{win}", "float" if what == "amount" else "int",
       f"{noun} {'amount' if what == 'amount' else 'transactions'} in the last {win_words}",
       f"{'Sum of amounts (tenant currency)' if what == 'amount' else 'Number'} of transactions of the same "
       f"type by this {noun} in the last {win_words}, this one included.")
    for ent, noun in (("cust", "customer"), ("ip", "IP"), ("device", "device"))
    for win, win_words in (("1h", "hour"), ("24h", "24 hours"))
    for what in ("count", "amount")
]

FEATURES: tuple[FeatureSpec, ...] = (
    *_VELOCITY,
    _f("ip_distinct_customers_24h", "int", "customers on this IP in 24 h",
       "Distinct customers seen on this IP in the last 24 hours, this one included."),
    _f("device_distinct_customers_24h", "int", "customers on this device in 24 h",
       "Distinct customers seen on this device in the last 24 hours, this one included."),
    _f("cust_distinct_payment_methods_24h", "int", "payment methods used by the customer in 24 h",
       "Distinct payment methods / card fingerprints used by the customer in the last 24 hours."),
    _f("cust_distinct_devices_24h", "int", "devices used by the customer in 24 h",
       "Distinct devices used by the customer in the last 24 hours."),
    _f("cust_tenure_s", "float", "customer tenure (seconds)",
       "Seconds since the customer was first seen (0 for the first event)."),
    _f("is_new_customer", "bool", "new customer",
       "1 when the customer was first seen less than `new_customer_seconds` ago, or is a guest."),
    _f("cust_history_n", "int", "past purchases in the amount history",
       "Number of past amounts behind `amount_robust_z` (capped)."),
    _f("amount_robust_z", "float", "amount vs the customer's usual (robust z)",
       "(log1p(amount) - centre) / (1.4826 * MAD) where centre and MAD come from the customer's past "
       "amounts, shrunk toward the tenant-wide prior when the customer has few points."),
    _f("amount_tenant", "float", "amount",
       "Amount converted to the tenant currency."),
    _f("amount_new_customer_percentile", "float", "amount percentile among new customers' purchases",
       "Share of the shop's recent new-customer purchases with a smaller amount (0..1; 0 for returns): "
       "the shop's own distribution of first-purchase amounts, refitted with the calibration; before "
       "there is enough data, the log-normal amount prior's CDF."),
    _f("hour_of_week", "int", "hour of the week",
       "0..167, Monday 00:00 = 0, in the tenant time zone."),
    _f("cust_orders_window", "int", "orders of the customer in the return window",
       "Distinct orders the customer bought in the return window (90 days by default), this one "
       "included; an order event and its successful payment are one order."),
    _f("cust_returned_orders_window", "int", "returned orders of the customer in the return window",
       "Distinct orders of the customer with at least one return in the return window, this one included."),
    _f("cust_returns_window", "int", "returns of the customer in the return window",
       "Return events (items or lines) of the customer in the return window, this one included."),
    _f("cust_return_rate", "float", "customer return rate",
       "cust_returned_orders_window / cust_orders_window (0..1; 0 without orders in the window)."),
    _f("cust_failed_streak", "int", "failed payments in a row (customer)",
       "Consecutive failed payments of the customer just before this event."),
    _f("device_failed_streak", "int", "failed payments in a row (device)",
       "Consecutive failed payments on the device just before this event."),
    _f("new_device", "bool", "new device for the customer",
       "1 when a known customer uses a device not seen for them in the retention window."),
    _f("new_ip", "bool", "new IP for the customer",
       "1 when a known customer uses an IP not seen for them in the retention window."),
    _f("new_country", "bool", "new country for the customer",
       "1 when a known customer pays from a country not seen for them in the retention window."),
    # Categorical context, passed through so that rules can use `in` lists on them.
    _f("event_type", "str", "event type", "payment, order or return."),
    _f("status", "str", "status", "Payment status (succeeded, failed) or empty."),
    _f("country", "str", "country", "Country code of the event, or empty."),
    _f("currency", "str", "original currency", "Currency the event was sent in."),
    _f("payment_method", "str", "payment method", "Payment method / card fingerprint, or empty."),
    _f("channel", "str", "channel", "Sales channel, or empty."),
)

FEATURE_BY_NAME: dict[str, FeatureSpec] = {f.name: f for f in FEATURES}
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
NUMERIC_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.dtype != "str")
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.dtype == "str")

# Default inputs of the statistical / ML detectors: behaviour features only. Raw amount and
# hour of week are left out on purpose (amount is covered relative to the customer by
# amount_robust_z; hour of week is cyclic and would need its own encoding).
DETECTOR_FEATURES: tuple[str, ...] = (
    "cust_count_1h", "cust_amount_1h", "cust_count_24h", "cust_amount_24h",
    "ip_count_1h", "ip_count_24h", "device_count_1h", "device_count_24h",
    "ip_distinct_customers_24h", "device_distinct_customers_24h",
    "cust_distinct_payment_methods_24h", "cust_distinct_devices_24h",
    "amount_robust_z", "cust_failed_streak", "device_failed_streak",
    "new_device", "new_ip", "new_country", "is_new_customer",
)


def label(name: str) -> str:
    """Analyst wording of a feature (falls back to the name for unknown columns)."""
    spec = FEATURE_BY_NAME.get(name)
    return spec.label if spec else name
