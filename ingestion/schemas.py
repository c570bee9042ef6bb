"""Validation and normalisation of incoming events (the pure hot path, no Django).

``validate_batch`` takes raw event dicts (from JSON, NDJSON, CSV or Kafka) and
splits them into normalised events ready for COPY and field-level rejections.

How it is fast: each event type has one pydantic-core validator built once at
import (a TypedDict schema, so the output is already a plain dict and no model
instance is created). Type coercion, ranges, lengths, unknown fields and
required fields run in Rust; only the few rules that need context or a lookup
(time zone, "not in the future", currency and country tables, IP syntax,
attribute size) are small Python callbacks. A Python loop dispatches on the
event type: pydantic validating a whole list at once would throw away the valid
events of a batch with one bad event, and a batch must keep its valid events.

Decisions worth knowing (also in the module constants below):

* ``timestamp``: ISO 8601 (``Z``/offset or none). Without an offset it is the
  tenant's wall-clock time; in a DST gap or overlap the first (pre-transition)
  offset wins. Unix epoch numbers are also accepted (seconds, or milliseconds
  when the number is too large to be seconds, pydantic's rule). Normalised to an
  aware UTC datetime; before 2000-01-01 or more than 1 day after ``now`` is
  rejected. ``timestamp`` and ``occurred_at`` in the output are that datetime.
* ``payment.status`` defaults to ``succeeded``: clients that only report
  completed payments (the common export) omit it; clients that report attempts
  send ``failed``/``pending`` explicitly.
* ``currency`` defaults to the tenant's currency only when ``amount`` is set.
* ``impression.quantity`` defaults to 1 (one impression per event).
* Empty or blank strings in optional fields mean "absent" (CSV exports and many
  SDKs send ``""`` for missing values); in required fields they are an error.
* Integer ids (``"customer_id": 42``) are accepted and stored as strings.
* JSON floats for ``amount`` are converted through their shortest repr, which
  is exact for amounts written with up to 15 significant digits; send larger
  amounts as strings.
* Unknown top-level fields are rejected with a "did you mean" hint; custom data
  goes under ``attributes``.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from operator import itemgetter
from typing import Annotated, Any, Final, Literal, NotRequired, Required, TypedDict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict as PydanticTypedDict  # pydantic needs it on Python < 3.12

from ingestion.iso4217 import ACCEPTED_CURRENCIES

# --------------------------------------------------------------------------- contract

EVENT_TYPES: Final[tuple[str, ...]] = (
    "order",
    "order_status",
    "click",
    "impression",
    "return",
    "payment",
    "stock",
    "metric",
)

ORDER_STATUSES: Final[tuple[str, ...]] = (
    "pending",
    "confirmed",
    "processing",
    "shipped",
    "out_for_delivery",
    "delivered",
    "cancelled",
    "returned",
    "refunded",
    "on_hold",
)
PAYMENT_STATUSES: Final[tuple[str, ...]] = ("succeeded", "failed", "pending", "refunded", "chargeback")
DEFAULT_PAYMENT_STATUS: Final[str] = "succeeded"

# Spellings seen in real exports, mapped to the canonical value. Applied after
# lower-casing and turning spaces/hyphens into underscores.
_STATUS_ALIASES: Final[dict[str, str]] = {
    "canceled": "cancelled",
    "in_transit": "shipped",
    "onhold": "on_hold",
    "success": "succeeded",
    "successful": "succeeded",
    "paid": "succeeded",
    "captured": "succeeded",
    "declined": "failed",
    "failure": "failed",
    "charged_back": "chargeback",
    "dispute": "chargeback",
    "disputed": "chargeback",
}

# Every field of the public Event contract, in the order used for COPY.
EVENT_FIELDS: Final[tuple[str, ...]] = (
    "event_id",
    "type",
    "timestamp",
    "customer_id",
    "session_id",
    "order_id",
    "channel",
    "campaign",
    "product_id",
    "store_id",
    "country",
    "amount",
    "currency",
    "quantity",
    "status",
    "ip",
    "device_id",
    "payment_method",
    "email_hash",
    "stock_level",
    "threshold",
    "metric",
    "value",
    "attributes",
)
# Columns of the events table fed by ``copy_rows`` (``timestamp`` is stored as occurred_at).
COPY_COLUMNS: Final[tuple[str, ...]] = tuple(f for f in EVENT_FIELDS if f != "timestamp") + ("occurred_at",)

REQUIRED_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "order": ("amount", "order_id"),
    "order_status": ("order_id", "status"),
    "click": (),
    "impression": (),
    "return": (),
    "payment": ("amount",),
    "stock": ("product_id", "stock_level"),
    "metric": ("metric", "value"),
}
# At least one of these must be present (checked on the raw event so the error is
# reported together with every other field error).
REQUIRED_ANY: Final[dict[str, tuple[str, ...]]] = {
    "payment": ("order_id", "customer_id"),
    "return": ("order_id", "amount"),
}

MAX_ID_LENGTH: Final[int] = 128
MAX_ATTRIBUTES_BYTES: Final[int] = 4096
MAX_AMOUNT: Final[Decimal] = Decimal(10) ** 14  # NUMERIC(18, 4)
MAX_QUANTITY: Final[int] = 1_000_000_000
MAX_BIGINT: Final[int] = 2**63 - 1
MIN_TIMESTAMP: Final[datetime] = datetime(2000, 1, 1, tzinfo=UTC)
MAX_FUTURE: Final[timedelta] = timedelta(days=1)

NON_FIELD_ERRORS: Final[str] = "non_field_errors"


class NormalisedEvent(TypedDict):
    """Output of validation: every contract field (None when absent) plus occurred_at."""

    event_id: str
    type: str
    timestamp: datetime
    customer_id: str | None
    session_id: str | None
    order_id: str | None
    channel: str | None
    campaign: str | None
    product_id: str | None
    store_id: str | None
    country: str | None
    amount: Decimal | None
    currency: str | None
    quantity: int | None
    status: str | None
    ip: str | None
    device_id: str | None
    payment_method: str | None
    email_hash: str | None
    stock_level: int | None
    threshold: int | None
    metric: str | None
    value: float | None
    attributes: dict[str, Any] | None
    occurred_at: datetime


class Rejection(TypedDict):
    index: int
    errors: dict[str, list[str]]


@dataclass(slots=True)
class BatchResult:
    """``valid`` keeps input order as (original index, event); ``rejected`` too."""

    valid: list[tuple[int, NormalisedEvent]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class RawError:
    """A record that could not even be decoded (broken NDJSON line, bad CSV row).

    Parsers put it in place of the raw event so indexes stay aligned; the
    validator turns it into a rejection with these errors. ``raw`` keeps (a
    bounded prefix of) the original text for the quarantine.
    """

    errors: dict[str, list[str]]
    raw: str | None = None


# ------------------------------------------------------------------ reference tables

# ISO 3166-1 alpha-2 (officially assigned) plus XK (Kosovo, user-assigned but used
# by every payment provider).
COUNTRY_CODES: Final[frozenset[str]] = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM
    BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX
    CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG
    GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR
    IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV
    LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE
    NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO
    RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF
    TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF
    WS YE YT ZA ZM ZW XK
    """.split()
)
# Non-ISO spellings that are unambiguous (UK in web analytics, EL in EU VAT data).
_COUNTRY_ALIASES: Final[dict[str, str]] = {"UK": "GB", "EL": "GR"}


# ------------------------------------------------------------------ field callbacks
# Each runs only when the field is present and already has the right Python type.


def _reject_bool(value: Any) -> Any:
    # pydantic's lax mode reads True as 1; for a quantity or a metric that is a bug upstream.
    if value is True or value is False:
        raise PydanticCustomError("bool_not_allowed", "Input should be a number, not a boolean")
    return value


def _check_timestamp(value: datetime, info: ValidationInfo) -> datetime:
    ctx: Any = info.context  # set by validate_batch
    if value.tzinfo is None:
        value = value.replace(tzinfo=ctx["tz"])
    value = value.astimezone(UTC)
    if value < MIN_TIMESTAMP:
        raise PydanticCustomError(
            "timestamp_too_old", "Timestamp {ts} is before 2000-01-01", {"ts": value.isoformat()}
        )
    if value > ctx["max_time"]:
        raise PydanticCustomError(
            "timestamp_in_future",
            "Timestamp {ts} is more than 1 day in the future (check the time zone or clock)",
            {"ts": value.isoformat()},
        )
    return value


def _check_event_id(value: str) -> str:
    if not value.isprintable():
        raise PydanticCustomError("event_id_not_printable", "event_id must contain only printable characters")
    return value


def _check_currency(value: str) -> str:
    if value not in ACCEPTED_CURRENCIES:
        raise PydanticCustomError(
            "currency_unknown", "'{code}' is not an ISO 4217 currency code", {"code": value}
        )
    return value


def _check_country(value: str) -> str:
    value = _COUNTRY_ALIASES.get(value, value)
    if value not in COUNTRY_CODES:
        raise PydanticCustomError(
            "country_unknown", "'{code}' is not an ISO 3166-1 alpha-2 country code", {"code": value}
        )
    return value


@lru_cache(maxsize=65536)
def _normalise_ip(value: str) -> str:
    # Cached: the same customers and bots come back many times in a stream, and
    # ipaddress parsing is pure Python (a few microseconds).
    try:
        return ipaddress.ip_address(value).compressed
    except ValueError:
        raise PydanticCustomError(
            "ip_invalid", "'{ip}' is not a valid IPv4 or IPv6 address", {"ip": value[:64]}
        ) from None


def _check_ip(value: str) -> str:
    return _normalise_ip(value) if value else value


def _normalise_status(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip().lower().replace("-", "_").replace(" ", "_")
        return _STATUS_ALIASES.get(value, value)
    return value


def _check_attributes(value: dict[str, Any]) -> dict[str, Any]:
    try:
        encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        # Only reachable from Python callers (Kafka decoders, tests): JSON bodies are always serialisable,
        # except NaN/Infinity, which PostgreSQL jsonb refuses.
        raise PydanticCustomError(
            "attributes_not_json",
            "attributes must be JSON-serialisable without NaN/Infinity: {err}",
            {"err": str(exc)},
        ) from None
    size = len(encoded) if encoded.isascii() else len(encoded.encode())
    if size > MAX_ATTRIBUTES_BYTES:
        raise PydanticCustomError(
            "attributes_too_large",
            "attributes is {size} bytes as JSON; the limit is {limit} bytes",
            {"size": size, "limit": MAX_ATTRIBUTES_BYTES},
        )
    return value


# ------------------------------------------------------------------ field schemas


def _str(
    *,
    lower: bool = False,
    upper: bool = False,
    max_length: int = MAX_ID_LENGTH,
    min_length: int | None = None,
) -> Any:
    return StringConstraints(
        strip_whitespace=True, to_lower=lower, to_upper=upper, max_length=max_length, min_length=min_length
    )


# Checked before lower-casing (pydantic applies the pattern first), hence A-Z.
_METRIC_PATTERN: Final[str] = r"^[A-Za-z0-9_.:-]{1,64}$"

_Id = Annotated[str, _str()]
_Lower = Annotated[str, _str(lower=True)]
_Int = Annotated[int, BeforeValidator(_reject_bool)]

# The optional (nullable) annotation of every field; required fields drop ``| None``.
_FIELD_TYPES: Final[dict[str, Any]] = {
    "event_id": Annotated[str, _str(), AfterValidator(_check_event_id)],
    "timestamp": Annotated[datetime, AfterValidator(_check_timestamp)],
    "customer_id": _Id,
    "session_id": _Id,
    "order_id": _Id,
    "channel": _Lower,
    "campaign": _Id,
    "product_id": _Id,
    "store_id": _Id,
    "country": Annotated[str, _str(upper=True, max_length=2, min_length=2), AfterValidator(_check_country)],
    "amount": Annotated[Decimal, Field(ge=0, lt=MAX_AMOUNT, decimal_places=4, allow_inf_nan=False)],
    "currency": Annotated[str, _str(upper=True, max_length=3), AfterValidator(_check_currency)],
    "quantity": Annotated[_Int, Field(ge=0, le=MAX_QUANTITY)],
    "status": Annotated[str, _str(lower=True, max_length=64)],
    "ip": Annotated[str, _str(max_length=64), AfterValidator(_check_ip)],
    "device_id": _Id,
    "payment_method": _Lower,
    "email_hash": _Id,
    "stock_level": Annotated[_Int, Field(ge=0, le=MAX_BIGINT)],
    "threshold": Annotated[_Int, Field(ge=0, le=MAX_BIGINT)],
    "metric": Annotated[
        str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=_METRIC_PATTERN)
    ],
    "value": Annotated[float, BeforeValidator(_reject_bool), Field(allow_inf_nan=False)],
    "attributes": Annotated[dict[str, Any], AfterValidator(_check_attributes)],
}

_STATUS_TYPES: Final[dict[str, Any]] = {
    "order": Annotated[Literal[ORDER_STATUSES], BeforeValidator(_normalise_status)],  # type: ignore[valid-type]
    "order_status": Annotated[Literal[ORDER_STATUSES], BeforeValidator(_normalise_status)],  # type: ignore[valid-type]
    "payment": Annotated[Literal[PAYMENT_STATUSES], BeforeValidator(_normalise_status)],  # type: ignore[valid-type]
}

_STRING_FIELDS: Final[frozenset[str]] = frozenset(
    name
    for name, tp in _FIELD_TYPES.items()
    if name not in ("timestamp", "amount", "quantity", "stock_level", "threshold", "value", "attributes")
)


def _build_adapter(event_type: str | None) -> TypeAdapter[Any]:
    """One compiled validator per event type (``None``: unknown type, for error reporting only)."""
    required = set(REQUIRED_FIELDS.get(event_type or "", ())) | {"timestamp"}
    fields: dict[str, Any] = {"type": NotRequired[Any]}  # already checked by the dispatcher
    for name, tp in _FIELD_TYPES.items():
        if name == "status" and event_type in _STATUS_TYPES:
            tp = _STATUS_TYPES[event_type]
        if name in required:
            if name in _STRING_FIELDS and name != "status":
                # A required id must not be blank after trimming.
                tp = Annotated[tp, StringConstraints(min_length=1)]
            fields[name] = Required[tp]
        else:
            fields[name] = NotRequired[tp | None]
    td = PydanticTypedDict(f"{event_type or 'unknown'}_event", fields)  # type: ignore[misc]
    td.__pydantic_config__ = ConfigDict(extra="forbid", coerce_numbers_to_str=True)  # type: ignore[attr-defined]
    return TypeAdapter(td)


# The compiled core validators (skipping TypeAdapter's Python wrapper saves a call per event).
_ADAPTERS: Final[dict[str, Any]] = {t: _build_adapter(t).validator for t in EVENT_TYPES}
_UNKNOWN_TYPE_ADAPTER: Final[Any] = _build_adapter(None).validator

_TEMPLATE: Final[dict[str, Any]] = dict.fromkeys(EVENT_FIELDS + ("occurred_at",))
_KNOWN_FIELDS: Final[tuple[str, ...]] = EVENT_FIELDS


# ------------------------------------------------------------------ errors


MAX_UNKNOWN_FIELDS_REPORTED: Final[int] = 10


# difflib costs ~0.2 ms per unknown key: cache the hints (a batch with a typo repeats
# the same key) and compute at most a few new ones per batch, so a hostile body full
# of distinct random keys cannot make validation slow.
_HINTS: dict[str, str] = {}
_HINT_CACHE_SIZE: Final[int] = 4096
NEW_HINTS_PER_BATCH: Final[int] = 50
_PLAIN_UNKNOWN: Final[str] = "Unknown field; custom data goes under 'attributes'."


def _unknown_field_message(name: str, budget: list[int]) -> str:
    message = _HINTS.get(name)
    if message is not None:
        return message
    if budget[0] <= 0 or len(name) > 24:  # long keys are never typos of a field name
        return _PLAIN_UNKNOWN
    budget[0] -= 1
    hint = difflib.get_close_matches(name, _KNOWN_FIELDS, n=1, cutoff=0.75)
    message = (
        f"Unknown field; did you mean '{hint[0]}'? Custom data goes under 'attributes'."
        if hint
        else _PLAIN_UNKNOWN
    )
    if len(_HINTS) >= _HINT_CACHE_SIZE:
        _HINTS.clear()
    _HINTS[name] = message
    return message


def _add(errors: dict[str, list[str]], name: str, message: str) -> None:
    errors.setdefault(name, []).append(message)


def _collect(exc: ValidationError, errors: dict[str, list[str]], hint_budget: list[int]) -> None:
    unknown = 0
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = err["loc"]
        name = str(loc[0])[:64] if loc else NON_FIELD_ERRORS
        kind = err["type"]
        if kind == "extra_forbidden":
            unknown += 1
            if unknown > MAX_UNKNOWN_FIELDS_REPORTED:
                continue
            message = _unknown_field_message(name, hint_budget)
        elif kind == "missing":
            message = "This field is required."
        elif kind == "string_too_short" and loc and len(loc) == 1 and name != "country":
            message = "This field is required and may not be blank."
        elif kind == "string_pattern_mismatch" and name == "metric":
            message = "Metric names are 1 to 64 characters among a-z, 0-9, '_', '.', ':' and '-'."
        elif kind in ("datetime_parsing", "datetime_from_date_parsing", "datetime_type"):
            message = f"{err['msg']}; expected ISO 8601, e.g. 2025-03-01T10:00:00Z."
        else:
            message = err["msg"]
            if len(loc) > 1:  # inside attributes: say where
                message = f"{'.'.join(str(p) for p in loc[1:])}: {message}"
        _add(errors, name, message)
    if unknown > MAX_UNKNOWN_FIELDS_REPORTED:
        _add(
            errors,
            NON_FIELD_ERRORS,
            f"{unknown - MAX_UNKNOWN_FIELDS_REPORTED} more unknown fields not listed.",
        )


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# ------------------------------------------------------------------ public API


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def validate_batch(
    raw_events: Sequence[Any],
    *,
    tenant_tz: str,
    tenant_currency: str,
    now: datetime,
    event_id_factory: Callable[[int], str] | None = None,
) -> BatchResult:
    """Validate and normalise a batch; valid events keep their input order and index.

    ``event_id_factory(index)`` makes the id of an event that has none; give a
    deterministic one (e.g. upload id + row number) where a retry must not create
    duplicates. By default ids are a random per-batch prefix plus the index.
    """
    try:
        tz = _zone(tenant_tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"tenant time zone {tenant_tz!r} is not a known IANA zone") from exc
    currency = tenant_currency.strip().upper()
    if currency not in ACCEPTED_CURRENCIES:
        raise ValueError(f"tenant currency {tenant_currency!r} is not an ISO 4217 code")
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    context = {"tz": tz, "max_time": now + MAX_FUTURE}

    result = BatchResult()
    valid = result.valid
    rejected = result.rejected
    adapters = _ADAPTERS
    template = _TEMPLATE
    id_prefix: str | None = None
    hint_budget = [NEW_HINTS_PER_BATCH]

    for index, raw in enumerate(raw_events):
        if type(raw) is not dict:
            if isinstance(raw, RawError):
                rejected.append({"index": index, "errors": raw.errors})
            elif isinstance(raw, Mapping):  # e.g. a Kafka decoder's mapping type
                raw = dict(raw)
            else:
                kind = "array" if isinstance(raw, list | tuple) else type(raw).__name__
                rejected.append(
                    {
                        "index": index,
                        "errors": {NON_FIELD_ERRORS: [f"Each event must be a JSON object, got {kind}."]},
                    }
                )
            if type(raw) is not dict:
                continue

        errors: dict[str, list[str]] = {}
        event_type = raw.get("type")
        adapter = adapters.get(event_type) if type(event_type) is str else None
        if adapter is None:
            if (
                isinstance(event_type, str)
                and (adapter := adapters.get(event_type.strip().lower())) is not None
            ):
                event_type = event_type.strip().lower()
            else:
                if _blank(event_type):
                    _add(errors, "type", "This field is required.")
                else:
                    _add(
                        errors,
                        "type",
                        f"{str(event_type)[:40]!r} is not a valid event type; expected one of {', '.join(EVENT_TYPES)}.",
                    )
                adapter = _UNKNOWN_TYPE_ADAPTER
                event_type = None

        if event_type in REQUIRED_ANY:
            names = REQUIRED_ANY[event_type]
            if all(_blank(raw.get(n)) for n in names):
                _add(errors, names[0], f"A {event_type} event needs {' or '.join(names)}.")

        try:
            data = adapter.validate_python(raw, context=context)
        except ValidationError as exc:
            _collect(exc, errors, hint_budget)
        if errors:
            rejected.append({"index": index, "errors": errors})
            continue

        event = template.copy()
        event.update(data)
        for name, value in data.items():
            if value == "":  # blank optional string: absent
                event[name] = None
        event["type"] = event_type
        event["occurred_at"] = event["timestamp"]
        if event["event_id"] is None:
            if event_id_factory is not None:
                event["event_id"] = event_id_factory(index)
            else:
                if id_prefix is None:
                    id_prefix = uuid.uuid4().hex
                event["event_id"] = f"{id_prefix}-{index}"
        if event["amount"] is not None and event["currency"] is None:
            event["currency"] = currency
        if event_type == "impression" and event["quantity"] is None:
            event["quantity"] = 1
        elif event_type == "payment" and event["status"] is None:
            event["status"] = DEFAULT_PAYMENT_STATUS
        valid.append((index, event))  # type: ignore[arg-type]
    return result


_row_getter = itemgetter(*COPY_COLUMNS)
_ATTRIBUTES_POS: Final[int] = COPY_COLUMNS.index("attributes")


def copy_rows(events: Iterable[NormalisedEvent]) -> Iterator[tuple[Any, ...]]:
    """Rows in ``COPY_COLUMNS`` order, attributes as JSON text (jsonb accepts it in COPY)."""
    dumps = json.dumps
    pos = _ATTRIBUTES_POS
    for event in events:
        row = _row_getter(event)
        if row[pos] is not None:
            row = (*row[:pos], dumps(row[pos], ensure_ascii=False, separators=(",", ":")), *row[pos + 1 :])
        yield row
