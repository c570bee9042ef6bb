"""Batch enrichment: normalised transaction events -> the features of `scoring.features`.

One implementation serves the batch path (a Celery task with 10,000 events) and the synchronous
fraud-check (one event): both go through `Enricher.enrich`, which makes ONE Redis round trip.

Why a Lua script (EVALSHA) rather than a read pipeline followed by a write pipeline: features of
event i depend on the writes of events < i in the same batch (the 5th card test must see the first
four). A read-then-write pipeline would need either two round trips per event or a Python replay
of Redis semantics; the script applies and reads each event in order inside Redis, atomically, so
one call gives exact sequential semantics. Redis runs one script at a time and serves nobody else
meanwhile, so large batches are cut into calls of at most `config.chunk_size` events. While
synchronous checks are being served (`SYNC_TRAFFIC_KEY`, set by the fraud-check for a minute), the
calls go one at a time (not pipelined: Redis runs every command it has already read from a client
back to back), each sized from the time per event of the calls before it to hold Redis for about
`config.call_budget_ms`: a fraud-check then waits at most about that long behind a batch.
The cost of small calls: an entity seen in two calls is read and written twice (+5 % of Redis
time for customers with one payment per call, +30 % when they come back within minutes), so
batches use them only when someone is waiting.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import redis as redis_lib

from scoring.features import FEATURE_NAMES

LUA_SOURCE = (Path(__file__).with_name("state.lua")).read_text(encoding="utf-8")
LUA_SHA = hashlib.sha1(LUA_SOURCE.encode("utf-8")).hexdigest()
RELATED_SOURCE = (Path(__file__).with_name("related.lua")).read_text(encoding="utf-8")
RELATED_SHA = hashlib.sha1(RELATED_SOURCE.encode("utf-8")).hexdigest()

TRANSACTION_TYPES = {"payment": "P", "order": "O", "return": "R"}
_FAILED = {"failed", "declined", "error", "refused", "rejected"}
_SUCCEEDED = {"succeeded", "success", "paid", "captured", "authorized", "approved", "completed"}
_STATUS_CODE = {**{v: "F" for v in _FAILED}, **{v: "S" for v in _SUCCEEDED}}
_TENANT_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,63}$")
_N_OUT = 29  # numbers returned per event by state.lua
_HEADER = 12
_FIELDS = 11  # fields per event line (see state.lua)


DEFAULT_PRIOR_LOG_MEDIAN = math.log1p(50.0)
DEFAULT_PRIOR_LOG_MAD = 0.7


@dataclass(frozen=True, slots=True)
class EnrichConfig:
    """Per-tenant enrichment settings (the Django side fills it from Tenant.config)."""

    timezone: str = "UTC"
    currency: str = "USD"
    # Units of tenant currency for ONE unit of the key currency; the tenant currency itself is 1.
    fx_rates: Mapping[str, float] = field(default_factory=dict)
    new_customer_seconds: int = 86_400
    long_window_seconds: int = 86_400
    short_window_seconds: int = 3_600
    attribute_retention_seconds: int = 90 * 86_400
    profile_ttl_seconds: int = 180 * 86_400
    device_streak_ttl_seconds: int = 7 * 86_400
    return_window_seconds: int = 90 * 86_400  # purchases and returns behind the return rate
    return_cap: int = 256  # members kept per customer in the purchases/returns set
    velocity_cap: int = 500  # velocity and distinct-customer counts saturate here: bounds hot IPs
    attribute_cap: int = 64
    history_cap: int = 32
    # Tenant-wide prior of log1p(amount): cold-start values until `amount_prior()` is fed real data.
    prior_log_median: float = DEFAULT_PRIOR_LOG_MEDIAN
    prior_log_mad: float = DEFAULT_PRIOR_LOG_MAD
    shrink_points: float = 5.0  # a customer with this many past amounts gets half weight
    min_log_scale: float = 0.05  # +-5 % is never "unusual", even for a perfectly regular customer
    # Quantiles (probabilities 0, 1/q, ..., 1) of the tenant's recent new-customer purchase amounts,
    # from `new_customer_quantiles()`; empty until there is enough data (then the prior decides).
    new_customer_quantiles: tuple[float, ...] = ()
    chunk_size: int = 1_000  # most events in one script call
    # While synchronous checks are served, a batch's script calls are sized to take about this long
    # each (the first one has `first_call_events`): how long a fraud-check waits behind a batch.
    call_budget_ms: float = 10.0
    first_call_events: int = 100

    @property
    def rebuild_horizon_seconds(self) -> int:
        """How far back `rebuild_state` must be fed events to restore every feature."""
        return max(self.profile_ttl_seconds, self.attribute_retention_seconds, self.long_window_seconds,
                   self.return_window_seconds)


def amount_prior(amounts_tenant_currency: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """(prior_log_median, prior_log_mad) from a sample of the tenant's recent amounts."""
    x = np.log1p(np.asarray(amounts_tenant_currency, dtype=float))
    x = x[np.isfinite(x)]
    if x.size == 0:
        return DEFAULT_PRIOR_LOG_MEDIAN, DEFAULT_PRIOR_LOG_MAD
    med = float(np.median(x))
    return med, float(np.median(np.abs(x - med)))


NEW_CUSTOMER_QUANTILES = 1_000  # resolution 0.1 %: enough to tell the top 0.2 % from the top 1 %


def new_customer_quantiles(amounts_tenant_currency: Sequence[float] | np.ndarray,
                           points: int = NEW_CUSTOMER_QUANTILES) -> tuple[float, ...]:
    """Quantiles at 0, 1/points, ..., 1 of a sample of new-customer purchase amounts."""
    x = np.asarray(amounts_tenant_currency, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return ()
    return tuple(float(v) for v in np.quantile(x, np.linspace(0.0, 1.0, points + 1)))


def amount_percentile(amount: np.ndarray, quantiles: Sequence[float], prior_log_median: float,
                      prior_log_scale: float) -> np.ndarray:
    """Share of the reference amounts below `amount` (0..1). With quantiles: interpolated in the
    empirical table (ties: the middle of the tied range; above the largest: 1). Without: the
    log-normal prior's CDF, the same assumption as `amount_robust_z` for a customer without history."""
    amount = np.asarray(amount, dtype=float)
    if len(quantiles) >= 2:
        q = np.asarray(quantiles, dtype=float)
        probs = np.linspace(0.0, 1.0, q.size)
        lo = np.interp(amount, q, probs, left=0.0, right=1.0)  # first matching knot on ties
        hi = 1.0 - np.interp(-amount, -q[::-1], probs, left=0.0, right=1.0)  # last matching knot
        return np.clip(0.5 * (lo + hi), 0.0, 1.0)
    z = (np.log1p(np.maximum(amount, 0.0)) - prior_log_median) / max(prior_log_scale, 1e-9)
    return 0.5 * (1.0 + np.vectorize(math.erf, otypes=[float])(z / math.sqrt(2.0))) if z.size else z


def return_rate(orders: np.ndarray, returned_orders: np.ndarray) -> np.ndarray:
    """Returned orders / orders of a customer in the return window (0..1; 0 without orders: a return
    whose order fell out of the window, or was never sent, says nothing about a rate)."""
    orders = np.asarray(orders, dtype=float)
    returned = np.asarray(returned_orders, dtype=float)
    return np.where(orders > 0, np.clip(returned / np.maximum(orders, 1.0), 0.0, 1.0), 0.0)


def tenant_prefix(tenant: str) -> str:
    if not _TENANT_RE.match(tenant):
        raise ValueError(f"tenant key {tenant!r} must match {_TENANT_RE.pattern}")
    return f"pulse:{{{tenant}}}:"


class FeatureFrame(dict):
    """Column name -> NumPy array, one row per input event (a light DataFrame for the hot path).

    Extra columns besides the feature contract: `event_id`, `ts_ms`, `applied` (0 when the event
    had already been applied to the state, i.e. a replayed batch).
    """

    @property
    def n_rows(self) -> int:
        return len(self["ts_ms"])

    def row(self, i: int) -> dict[str, Any]:
        return {k: v[i].item() if isinstance(v[i], np.generic) else v[i] for k, v in self.items()}

    def to_pandas(self) -> pd.DataFrame:
        return pd.DataFrame(dict(self))

    def take(self, idx: np.ndarray | slice) -> FeatureFrame:
        return FeatureFrame({k: v[idx] for k, v in self.items()})


# ---------------------------------------------------------------------------------------------
# input normalisation


def _columns(events: Sequence[Mapping[str, Any]] | pd.DataFrame) -> dict[str, list[Any] | np.ndarray]:
    keys = ("event_id", "type", "timestamp", "customer_id", "ip", "device_id", "payment_method",
            "country", "amount", "currency", "status", "channel", "order_id")
    if isinstance(events, pd.DataFrame):
        return {k: (events[k].to_numpy() if k in events.columns else [None] * len(events)) for k in keys}
    return {k: [e.get(k) for e in events] for k in keys}


def order_tags(order_ids: np.ndarray, event_ids: np.ndarray) -> np.ndarray:
    """The state's tag of each event's purchase: the first 12 hex digits of the SHA-1 of its order id
    (of 'e:' + its event id without one), so an order and its payment are one purchase."""
    sha1 = hashlib.sha1
    return np.array([sha1((o or "e:" + e).encode()).hexdigest()[:12] for o, e in zip(order_ids.tolist(),
                     event_ids.tolist(), strict=True)], dtype=object)


def _str_col(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Strings as an object array; None / NaN become ''. A plain comprehension: cheaper than
    pandas' isna for one row and on a par for 10,000 (the values are Python objects anyway)."""
    return np.array(["" if v is None or v != v else str(v) for v in values], dtype=object)


def _float_col(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    try:
        out = np.asarray(values, dtype=np.float64)  # None -> nan; numeric strings and Decimals parse
    except (TypeError, ValueError):
        out = np.asarray(pd.to_numeric(pd.Series(values, dtype=object), errors="coerce"), dtype=np.float64)
    return np.where(np.isfinite(out), out, 0.0)


def _epoch_ms(values: Sequence[Any] | np.ndarray, tz: ZoneInfo) -> np.ndarray:
    arr = np.asarray(values)
    if np.issubdtype(arr.dtype, np.datetime64):  # naive datetime64 from a frame: tenant local time
        idx = pd.DatetimeIndex(arr).tz_localize(tz)
        return (idx.asi8 // 1_000_000).astype(np.int64)
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.DatetimeTZDtype):
        return (values.dt.tz_convert("UTC").astype("int64") // 1_000_000).to_numpy()

    def one(v: Any) -> int:
        if isinstance(v, str):
            v = datetime.fromisoformat(v)
        if isinstance(v, datetime):
            if v.tzinfo is None:  # DESIGN: a timestamp without offset is read in the tenant's zone
                v = v.replace(tzinfo=tz)
            return int(round(v.timestamp() * 1000))
        if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            return int(round(float(v) * 1000))  # epoch seconds
        raise ValueError(f"timestamp {v!r} is neither a datetime, an ISO 8601 string nor epoch seconds")

    # Inputs are already typed datetimes/strings; the conversion is one C call per value.
    return np.fromiter((one(v) for v in arr), dtype=np.int64, count=len(arr))


def hour_of_week(ts_ms: np.ndarray, tz_name: str) -> np.ndarray:
    """0..167 (Monday 00h = 0) in the tenant zone. Exact for any zone, DST included."""
    ts_ms = np.asarray(ts_ms, dtype=np.int64)
    if tz_name in ("UTC", "Etc/UTC"):
        # 1970-01-01 was a Thursday (day 3).
        return ((ts_ms // 3_600_000 + 72) % 168).astype(np.int64)
    tz = ZoneInfo(tz_name)
    if ts_ms.size <= 32:  # pandas costs ~0.3 ms per call; the single-event path stays in C datetime
        out = np.empty(ts_ms.size, dtype=np.int64)
        for i, t in enumerate(ts_ms.tolist()):
            d = datetime.fromtimestamp(t / 1000, tz=UTC).astimezone(tz)
            out[i] = d.weekday() * 24 + d.hour
        return out
    idx = pd.DatetimeIndex(pd.to_datetime(ts_ms, unit="ms", utc=True)).tz_convert(tz)
    return (np.asarray(idx.dayofweek) * 24 + np.asarray(idx.hour)).astype(np.int64)


@dataclass(slots=True)
class _Prepared:
    n: int
    argv: list[str]
    event_id: np.ndarray
    ts_ms: np.ndarray
    amount: np.ndarray
    cats: dict[str, np.ndarray]


class Enricher:
    """Computes transaction features for one tenant, keeping velocity state in Redis."""

    def __init__(self, client: redis_lib.Redis, tenant: str, config: EnrichConfig | None = None) -> None:
        self.client = client
        self.tenant = tenant
        self.prefix = tenant_prefix(tenant)
        self.config = config or EnrichConfig()
        self._tz = ZoneInfo(self.config.timezone)

    # -- public ------------------------------------------------------------------------------

    def enrich(self, events: Sequence[Mapping[str, Any]] | pd.DataFrame) -> FeatureFrame:
        """Apply the events to the state, in order, and return their features."""
        prep = self._prepare(events)
        if prep.n == 0:
            return self._empty()
        replies = self._run(prep, want_output=True)
        raw = np.frombuffer(b"".join(replies), dtype="<f8").reshape(prep.n, _N_OUT)
        return self._features(prep, raw)

    def enrich_one(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The synchronous fraud-check path: exactly `enrich([event])`, as a dict."""
        return self.enrich([event]).row(0)

    def apply(self, events: Sequence[Mapping[str, Any]] | pd.DataFrame) -> int:
        """Apply events to the state without computing features (rebuild). Returns events applied."""
        prep = self._prepare(events)
        if prep.n == 0:
            return 0
        return int(sum(int(r) for r in self._run(prep, want_output=False)))

    # -- internals ---------------------------------------------------------------------------

    def _prepare(self, events: Sequence[Mapping[str, Any]] | pd.DataFrame) -> _Prepared:
        cols = _columns(events)
        n = len(cols["type"])
        if n == 0:
            return _Prepared(0, [], np.array([], dtype=object), np.array([], dtype=np.int64),
                             np.array([], dtype=float), {})
        types = _str_col(cols["type"])
        type_codes = np.array([TRANSACTION_TYPES.get(t, "") for t in types], dtype=object)
        bad = np.flatnonzero(type_codes == "")
        if bad.size:
            raise ValueError(f"event {int(bad[0])}: type {types[bad[0]]!r} is not one of {sorted(TRANSACTION_TYPES)}")
        status = np.array([v.lower() for v in _str_col(cols["status"])], dtype=object)
        st_code = np.array([_STATUS_CODE.get(v, "") for v in status], dtype=object)
        ts_ms = _epoch_ms(cols["timestamp"], self._tz)
        amount = _float_col(cols["amount"])
        currency = _str_col(cols["currency"])
        currency = np.where(currency == "", self.config.currency, currency).astype(object)
        rate = self._rates(currency)
        cents = np.round(amount * rate * 100.0).astype(np.int64)
        eid = _str_col(cols["event_id"])
        if (eid == "").any():  # ids only guard replays; an id-less event gets a unique one
            import uuid

            eid = np.array([e or uuid.uuid4().hex for e in eid], dtype=object)
        cust, ip, dev = _str_col(cols["customer_id"]), _str_col(cols["ip"]), _str_col(cols["device_id"])
        pm, country = _str_col(cols["payment_method"]), _str_col(cols["country"])
        # One argument per event, fields joined by \x1f (see state.lua).
        sep = "\x1f"
        line = (eid + sep + type_codes + sep + st_code + sep + ts_ms.astype(str).astype(object) + sep
                + cents.astype(str).astype(object) + sep + cust + sep + ip + sep
                + dev + sep + pm + sep + country + sep + order_tags(_str_col(cols["order_id"]), eid))
        argv = line.tolist()
        if "".join(argv).count(sep) != (_FIELDS - 1) * n:
            raise ValueError("event fields must not contain the \\x1f control character")
        return _Prepared(
            n=n, argv=argv, event_id=eid, ts_ms=ts_ms, amount=cents / 100.0,
            cats={"event_type": types, "status": status, "country": country, "currency": currency,
                  "payment_method": pm, "channel": _str_col(cols["channel"])},
        )

    def _rates(self, currency: np.ndarray) -> np.ndarray:
        uniq = set(currency.tolist())
        table = {c: 1.0 if c == self.config.currency else self.config.fx_rates.get(c) for c in uniq}
        unknown = sorted(c for c, r in table.items() if r is None)
        if unknown:
            # Ingestion validates currencies against the same table; reaching here is a config bug.
            raise ValueError(f"no exchange rate to {self.config.currency} for currencies {unknown}")
        return np.array([table[c] for c in currency.tolist()], dtype=float)

    def _header(self, n: int, want_output: bool) -> list[str]:
        c = self.config
        return [str(n), str(c.long_window_seconds * 1000), str(c.short_window_seconds * 1000),
                str(c.attribute_retention_seconds * 1000), str(c.profile_ttl_seconds * 1000),
                str(c.velocity_cap), str(c.attribute_cap), str(c.history_cap),
                "1" if want_output else "0", str(c.device_streak_ttl_seconds * 1000),
                str(c.return_window_seconds * 1000), str(c.return_cap)]

    def _run(self, prep: _Prepared, *, want_output: bool) -> list[Any]:
        """The events in consecutive script calls (see the module docstring). With synchronous
        traffic about, one at a time: the first of `first_call_events`, each next one sized from the
        mean time per event so far (round trips and waits included, which errs on the short side)
        to take about `call_budget_ms`. Otherwise calls of `chunk_size` events in one pipeline (one
        round trip: a call after a reply would wait for this thread to get the GIL back). Same
        state, same features either way."""
        c = self.config
        cap = max(1, c.chunk_size)
        first = min(cap, max(1, c.first_call_events))
        if prep.n > first and sync_traffic_seen(self.client):
            replies: list[Any] = []
            start, spent = 0, 0.0
            while start < prep.n:
                size = first if not start else max(1, min(cap, int(c.call_budget_ms / 1e3 * start / max(spent, 1e-6))))
                m = min(size, prep.n - start)
                args = self._header(m, want_output) + prep.argv[start:start + m]
                t0 = time.perf_counter()
                replies.append(_evalsha(self.client, LUA_SOURCE, LUA_SHA, [self.prefix], args))
                spent += time.perf_counter() - t0
                start += m
            return replies
        calls = [self._header(min(cap, prep.n - start), want_output) + prep.argv[start:start + cap]
                 for start in range(0, prep.n, cap)]
        if len(calls) == 1:  # the fraud-check path: a bare EVALSHA, no pipeline overhead
            return [_evalsha(self.client, LUA_SOURCE, LUA_SHA, [self.prefix], calls[0])]
        for attempt in (0, 1):
            try:
                pipe = self.client.pipeline(transaction=False)
                for args in calls:
                    pipe.execute_command("EVALSHA", LUA_SHA, 1, self.prefix, *args)
                return pipe.execute()
            except redis_lib.exceptions.NoScriptError:
                # Script cache empty (Redis restart): no call ran, so loading and retrying is safe.
                if attempt:
                    raise
                self.client.script_load(LUA_SOURCE)
        raise AssertionError("unreachable")

    def _features(self, prep: _Prepared, raw: np.ndarray) -> FeatureFrame:
        c = self.config
        col = raw.T
        out: dict[str, np.ndarray] = {}
        names = ("cust", "ip", "device")
        for j, ent in enumerate(names):
            base = 4 * j
            out[f"{ent}_count_1h"] = col[base].astype(np.int64)
            out[f"{ent}_amount_1h"] = col[base + 1] / 100.0
            out[f"{ent}_count_24h"] = col[base + 2].astype(np.int64)
            out[f"{ent}_amount_24h"] = col[base + 3] / 100.0
        out["ip_distinct_customers_24h"] = col[12].astype(np.int64)
        out["device_distinct_customers_24h"] = col[13].astype(np.int64)
        out["cust_distinct_payment_methods_24h"] = col[14].astype(np.int64)
        out["cust_distinct_devices_24h"] = col[15].astype(np.int64)
        tenure_ms = col[16]
        has_customer = tenure_ms >= 0
        out["cust_tenure_s"] = np.where(has_customer, tenure_ms / 1000.0, 0.0)
        out["is_new_customer"] = (~has_customer | (tenure_ms < c.new_customer_seconds * 1000)).astype(np.int64)
        hn, hmed, hmad = col[17], col[18], col[19]
        out["cust_history_n"] = hn.astype(np.int64)
        # Shrink the customer's own centre/spread toward the tenant prior: few points, little weight.
        w = hn / (hn + c.shrink_points)
        centre = w * hmed + (1 - w) * c.prior_log_median
        spread = w * hmad + (1 - w) * c.prior_log_mad
        scale = np.maximum(1.4826 * spread, c.min_log_scale)
        is_return = prep.cats["event_type"] == "return"
        out["amount_robust_z"] = np.where(is_return, 0.0, (np.log1p(prep.amount) - centre) / scale)
        out["amount_tenant"] = prep.amount
        pct = amount_percentile(prep.amount, c.new_customer_quantiles, c.prior_log_median,
                                max(1.4826 * c.prior_log_mad, c.min_log_scale))
        out["amount_new_customer_percentile"] = np.where(is_return, 0.0, pct)
        out["hour_of_week"] = hour_of_week(prep.ts_ms, c.timezone)
        npur, nret = col[20], col[21]
        out["cust_orders_window"] = npur.astype(np.int64)
        out["cust_returned_orders_window"] = nret.astype(np.int64)
        out["cust_returns_window"] = col[28].astype(np.int64)
        out["cust_return_rate"] = return_rate(npur, nret)
        out["cust_failed_streak"] = col[22].astype(np.int64)
        out["device_failed_streak"] = col[23].astype(np.int64)
        out["new_device"] = col[24].astype(np.int64)
        out["new_ip"] = col[25].astype(np.int64)
        out["new_country"] = col[26].astype(np.int64)
        out.update(prep.cats)
        frame = FeatureFrame({name: out[name] for name in FEATURE_NAMES})
        frame["event_id"] = prep.event_id
        frame["ts_ms"] = prep.ts_ms
        frame["applied"] = col[27].astype(np.int64)
        return frame

    def _empty(self) -> FeatureFrame:
        frame = FeatureFrame({name: np.array([]) for name in FEATURE_NAMES})
        frame["event_id"] = np.array([], dtype=object)
        frame["ts_ms"] = np.array([], dtype=np.int64)
        frame["applied"] = np.array([], dtype=np.int64)
        return frame


# Set (for SYNC_TRAFFIC_MS) by every synchronous check: while it exists, batches enrich in short
# script calls. Not per tenant: one Redis process blocks every tenant on it alike.
SYNC_TRAFFIC_KEY = "pulse:sync-traffic"
SYNC_TRAFFIC_MS = 60_000
# A process looks the key up at most this often (a lookup costs the enriching thread a round trip).
SYNC_TRAFFIC_RECHECK_SECONDS = 1.0
_sync_seen: list[Any] = [float("-inf"), False]  # (monotonic time of the lookup, the answer)


def sync_traffic_mark(client: redis_lib.Redis | Any) -> None:
    """Tell batch enrichment that synchronous checks are being served (a client or a pipeline)."""
    client.set(SYNC_TRAFFIC_KEY, 1, px=SYNC_TRAFFIC_MS)


def sync_traffic_seen(client: redis_lib.Redis) -> bool:
    """Whether synchronous checks were served lately (looked up at most once a second)."""
    now = time.monotonic()
    if now - _sync_seen[0] >= SYNC_TRAFFIC_RECHECK_SECONDS:
        _sync_seen[:] = [now, bool(client.exists(SYNC_TRAFFIC_KEY))]
    return bool(_sync_seen[1])


def _evalsha(client: redis_lib.Redis, source: str, sha: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """EVALSHA, loading the script once when Redis's script cache is empty (a restart)."""
    try:
        return client.evalsha(sha, len(keys), *keys, *args)
    except redis_lib.exceptions.NoScriptError:
        client.script_load(source)
        return client.evalsha(sha, len(keys), *keys, *args)


# ---------------------------------------------------------------------------------------------
# reading the state


def record_key(prefix: str, entity_type: str, code: str, entity: str) -> tuple[str, str]:
    """(record key, field) of state.lua holding an entity's events of one type: the velocity list
    of payments ('P') or orders ('O') of a customer, IP or device; a customer's returns ('R')."""
    if entity_type == "customer":
        return f"{prefix}c:{entity}", ("r" if code == "R" else f"v{code}")
    if code == "R" or entity_type not in ("ip", "device"):
        raise ValueError(f"no {code!r} events are kept per {entity_type}")
    return f"{prefix}{entity_type[0]}{code}:{entity}", "v"


def related_events(client: redis_lib.Redis, prefix: str,
                   requests: Sequence[tuple[str, str, str, int, int, int]]) -> list[list[str]]:
    """Event ids of an entity within (hi - seconds, hi], newest first, up to `limit`, for each
    request (entity_type, type code, entity, hi_ms, seconds, limit); one Redis call in all."""
    if not requests:
        return []
    keys: list[str] = []
    args: list[Any] = []
    for entity_type, code, entity, hi, seconds, limit in requests:
        key, fld = record_key(prefix, entity_type, code, entity)
        keys.append(key)
        args += [fld, int(hi), int(hi) - seconds * 1000, limit]
    reply = _evalsha(client, RELATED_SOURCE, RELATED_SHA, keys, args)
    return [[v.decode() if isinstance(v, bytes) else str(v) for v in ids] for ids in reply]


# ---------------------------------------------------------------------------------------------
# state maintenance


def clear_state(client: redis_lib.Redis, tenant: str) -> int:
    """Delete every enrichment key of one tenant (SCAN + UNLINK, never KEYS). Returns keys deleted."""
    pattern = tenant_prefix(tenant).replace("[", "\\[") + "*"
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += int(client.unlink(*batch))  # type: ignore[arg-type]  # sync client
            batch = []
    if batch:
        deleted += int(client.unlink(*batch))  # type: ignore[arg-type]
    return deleted


def _chunks(items: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    buf: list[Mapping[str, Any]] = []
    for item in items:
        buf.append(item)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def rebuild_state(
    client: redis_lib.Redis,
    tenant: str,
    events: Iterable[Mapping[str, Any]],
    *,
    config: EnrichConfig | None = None,
    chunk_size: int = 5_000,
) -> int:
    """Rebuild a tenant's Redis state after it was lost, from stored transaction events.

    Feed the payment/order/return events of the last `config.rebuild_horizon_seconds`, in
    timestamp order (the Django side streams them from PostgreSQL with a server-side cursor);
    they are replayed through the same script as live traffic, so the state (and therefore every
    later feature) is the one live processing would have produced. Returns events applied.
    """
    enricher = Enricher(client, tenant, config)
    clear_state(client, tenant)
    applied = 0
    for chunk in _chunks(events, chunk_size):
        applied += enricher.apply(chunk)
    return applied
