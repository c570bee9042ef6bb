from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ingestion.iso4217 import ACCEPTED_CURRENCIES, ACTIVE_CURRENCIES
from ingestion.schemas import (
    COPY_COLUMNS,
    COUNTRY_CODES,
    EVENT_FIELDS,
    EVENT_TYPES,
    RawError,
    copy_rows,
    validate_batch,
)

NOW = datetime(2025, 3, 2, 12, 0, tzinfo=UTC)
TS = "2025-03-01T10:00:00Z"

VALID: dict[str, dict[str, Any]] = {
    "order": {"type": "order", "timestamp": TS, "order_id": "o-1", "amount": "19.99"},
    "order_status": {"type": "order_status", "timestamp": TS, "order_id": "o-1", "status": "shipped"},
    "click": {"type": "click", "timestamp": TS},
    "impression": {"type": "impression", "timestamp": TS},
    "return": {"type": "return", "timestamp": TS, "order_id": "o-1"},
    "payment": {"type": "payment", "timestamp": TS, "amount": 10, "customer_id": "c-1"},
    "stock": {"type": "stock", "timestamp": TS, "product_id": "p-1", "stock_level": 3},
    "metric": {"type": "metric", "timestamp": TS, "metric": "revenue", "value": 12.5},
}


def run(events: list[Any], tz: str = "UTC", currency: str = "EUR", **kw: Any):
    return validate_batch(events, tenant_tz=tz, tenant_currency=currency, now=NOW, **kw)


def one_ok(event: dict[str, Any], **kw: Any) -> dict[str, Any]:
    result = run([event], **kw)
    assert result.rejected == [], result.rejected
    return result.valid[0][1]


def one_errors(event: Any, **kw: Any) -> dict[str, list[str]]:
    result = run([event], **kw)
    assert result.valid == []
    assert [r["index"] for r in result.rejected] == [0]
    return result.rejected[0]["errors"]


# ---------------------------------------------------------------- reference tables


def test_currency_tables() -> None:
    assert {"USD", "EUR", "JPY", "GBP", "XCG", "ZWG"} <= ACTIVE_CURRENCIES
    assert "HRK" in ACCEPTED_CURRENCIES and "HRK" not in ACTIVE_CURRENCIES
    assert not {"XXX", "XTS"} & ACCEPTED_CURRENCIES
    assert all(len(c) == 3 and c.isalpha() and c.isupper() for c in ACCEPTED_CURRENCIES)


def test_country_table_is_iso_3166_plus_kosovo() -> None:
    assert len(COUNTRY_CODES) == 250
    assert {"US", "GB", "DE", "XK"} <= COUNTRY_CODES


# ---------------------------------------------------------------- every type valid


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_minimal_valid_event_of_each_type(event_type: str) -> None:
    event = one_ok(VALID[event_type])
    assert event["type"] == event_type
    assert set(event) == set(EVENT_FIELDS) | {"occurred_at"}
    assert event["occurred_at"] == datetime(2025, 3, 1, 10, tzinfo=UTC)
    assert event["occurred_at"].tzinfo is UTC
    assert event["timestamp"] == event["occurred_at"]
    assert event["event_id"]


def test_defaults_per_type() -> None:
    assert one_ok(VALID["impression"])["quantity"] == 1
    payment = one_ok(VALID["payment"])
    assert payment["status"] == "succeeded"
    assert payment["currency"] == "EUR"  # tenant's, because there is an amount
    assert one_ok(VALID["click"])["currency"] is None
    assert one_ok(VALID["order"], currency="usd")["currency"] == "USD"


def test_full_order_is_normalised() -> None:
    event = one_ok(
        {
            "type": " Order ",
            "timestamp": "2025-03-01T11:30:00+01:00",
            "event_id": "  ev-1  ",
            "order_id": " o-1 ",
            "customer_id": 12345,
            "session_id": "",
            "channel": "Email",
            "campaign": "Spring Sale",
            "country": "fr",
            "amount": "0019.9900",
            "currency": "usd",
            "quantity": "3",
            "status": "Pending",
            "ip": "2001:DB8:0:0::1",
            "payment_method": "VISA",
            "attributes": {"coupon": "X", "nested": {"a": [1, 2]}},
        }
    )
    assert event["type"] == "order"
    assert event["event_id"] == "ev-1"
    assert event["order_id"] == "o-1"
    assert event["customer_id"] == "12345"
    assert event["session_id"] is None
    assert event["channel"] == "email"
    assert event["campaign"] == "Spring Sale"
    assert event["country"] == "FR"
    assert event["amount"] == Decimal("19.99") and isinstance(event["amount"], Decimal)
    assert event["currency"] == "USD"
    assert event["quantity"] == 3
    assert event["status"] == "pending"
    assert event["ip"] == "2001:db8::1"
    assert event["payment_method"] == "visa"
    assert event["occurred_at"] == datetime(2025, 3, 1, 10, 30, tzinfo=UTC)
    assert event["attributes"] == {"coupon": "X", "nested": {"a": [1, 2]}}


def test_amount_from_float_and_exponent_is_exact() -> None:
    assert one_ok({**VALID["order"], "amount": 19.99})["amount"] == Decimal("19.99")
    assert one_ok({**VALID["order"], "amount": 0})["amount"] == Decimal(0)
    assert one_ok({**VALID["order"], "amount": "1e3"})["amount"] == Decimal(1000)
    assert one_ok({**VALID["order"], "amount": "1.23400"})["amount"] == Decimal("1.234")


def test_status_aliases() -> None:
    assert one_ok({**VALID["order_status"], "status": "Canceled"})["status"] == "cancelled"
    assert one_ok({**VALID["order_status"], "status": "out-for-delivery"})["status"] == "out_for_delivery"
    assert one_ok({**VALID["payment"], "status": "DECLINED"})["status"] == "failed"


def test_naive_timestamp_is_read_in_tenant_zone() -> None:
    # 10:00 in Los Angeles on 1 March (PST, UTC-8) is 18:00 UTC; in July (PDT, UTC-7) 17:00 UTC.
    winter = one_ok({**VALID["click"], "timestamp": "2025-03-01T10:00:00"}, tz="America/Los_Angeles")
    assert winter["occurred_at"] == datetime(2025, 3, 1, 18, tzinfo=UTC)
    summer = validate_batch(
        [{**VALID["click"], "timestamp": "2024-07-01 10:00:00"}],
        tenant_tz="America/Los_Angeles",
        tenant_currency="USD",
        now=NOW,
    ).valid[0][1]
    assert summer["occurred_at"] == datetime(2024, 7, 1, 17, tzinfo=UTC)
    # An explicit offset wins over the tenant zone.
    explicit = one_ok({**VALID["click"], "timestamp": "2025-03-01T10:00:00Z"}, tz="America/Los_Angeles")
    assert explicit["occurred_at"] == datetime(2025, 3, 1, 10, tzinfo=UTC)


def test_epoch_seconds_and_milliseconds() -> None:
    seconds = int(datetime(2025, 3, 1, 10, tzinfo=UTC).timestamp())
    assert one_ok({**VALID["click"], "timestamp": seconds})["occurred_at"] == datetime(
        2025, 3, 1, 10, tzinfo=UTC
    )
    assert one_ok({**VALID["click"], "timestamp": seconds * 1000})["occurred_at"] == datetime(
        2025, 3, 1, 10, tzinfo=UTC
    )


def test_generated_event_ids() -> None:
    result = run([VALID["click"], VALID["click"]])
    ids = [e["event_id"] for _, e in result.valid]
    assert len(set(ids)) == 2
    again = run([VALID["click"]], event_id_factory=lambda i: f"upload-7:{i + 100}")
    assert again.valid[0][1]["event_id"] == "upload-7:100"


# ---------------------------------------------------------------- invalid events


@pytest.mark.parametrize(
    ("event_type", "field"),
    [
        (t, f)
        for t, fields in {
            "order": ("amount", "order_id"),
            "order_status": ("order_id", "status"),
            "payment": ("amount",),
            "stock": ("product_id", "stock_level"),
            "metric": ("metric", "value"),
        }.items()
        for f in fields
    ]
    + [(t, "timestamp") for t in EVENT_TYPES],
)
def test_each_required_field_missing(event_type: str, field: str) -> None:
    event = dict(VALID[event_type])
    event.pop(field)
    errors = one_errors(event)
    assert list(errors) == [field]
    assert errors[field] == ["This field is required."]


def test_blank_required_id_is_an_error() -> None:
    errors = one_errors({**VALID["order"], "order_id": "   "})
    assert errors == {"order_id": ["This field is required and may not be blank."]}


def test_payment_needs_order_or_customer() -> None:
    event = {"type": "payment", "timestamp": TS, "amount": "5"}
    assert one_errors(event) == {"order_id": ["A payment event needs order_id or customer_id."]}
    assert one_ok({**event, "order_id": "o-1"})["order_id"] == "o-1"


def test_return_needs_order_or_amount() -> None:
    event = {"type": "return", "timestamp": TS, "customer_id": "c"}
    assert one_errors(event) == {"order_id": ["A return event needs order_id or amount."]}
    assert one_ok({**event, "amount": "3.50"})["amount"] == Decimal("3.50")


def test_type_missing_or_unknown_still_reports_other_fields() -> None:
    errors = one_errors({"timestamp": "yesterday", "amount": "x"})
    assert errors["type"] == ["This field is required."]
    assert "timestamp" in errors and "amount" in errors
    errors = one_errors({"type": "purchase", "timestamp": TS})
    assert "not a valid event type" in errors["type"][0]


def test_every_failing_field_is_reported() -> None:
    errors = one_errors(
        {
            "type": "order",
            "timestamp": TS,
            "order_id": "o",
            "amount": "-1",
            "currency": "XYZ",
            "quantity": 1.5,
            "country": "ZZ",
            "ip": "300.1.2.3",
            "event_id": "a\nb",
            "customer_id": "c" * 129,
        }
    )
    assert set(errors) == {"amount", "currency", "quantity", "country", "ip", "event_id", "customer_id"}
    assert "greater than or equal to 0" in errors["amount"][0]
    assert "ISO 4217" in errors["currency"][0]
    assert "fractional part" in errors["quantity"][0]
    assert "ISO 3166" in errors["country"][0]
    assert "IPv4 or IPv6" in errors["ip"][0]
    assert "printable" in errors["event_id"][0]
    assert "128 characters" in errors["customer_id"][0]


@pytest.mark.parametrize(
    "amount", ["NaN", "Infinity", float("nan"), float("inf"), True, "1.23456", "abc", "1e20", [], {}]
)
def test_bad_amounts(amount: Any) -> None:
    assert "amount" in one_errors({**VALID["order"], "amount": amount})


@pytest.mark.parametrize("quantity", [1.5, "1.5", True, -1, "three"])
def test_bad_quantities(quantity: Any) -> None:
    assert "quantity" in one_errors({**VALID["order"], "quantity": quantity})


def test_integral_quantities_accepted() -> None:
    assert one_ok({**VALID["order"], "quantity": "3"})["quantity"] == 3
    assert one_ok({**VALID["order"], "quantity": 3.0})["quantity"] == 3


@pytest.mark.parametrize("bad", ["eur0", "EU", "€", "XXX", 978])
def test_bad_currency(bad: Any) -> None:
    assert "currency" in one_errors({**VALID["order"], "currency": bad})


@pytest.mark.parametrize(
    ("timestamp", "fragment"),
    [
        ("not a date", "valid datetime"),
        ("2025-13-01T00:00:00Z", "valid datetime"),
        ("1999-12-31T23:59:59Z", "before 2000-01-01"),
        ((NOW + timedelta(days=1, minutes=1)).isoformat(), "in the future"),
        (True, "datetime"),
    ],
)
def test_bad_timestamps(timestamp: Any, fragment: str) -> None:
    errors = one_errors({**VALID["click"], "timestamp": timestamp})
    assert fragment in errors["timestamp"][0]


def test_slightly_future_timestamp_is_accepted() -> None:
    # Client clocks drift: up to a day ahead is kept.
    one_ok({**VALID["click"], "timestamp": (NOW + timedelta(hours=23)).isoformat()})


def test_naive_future_check_uses_tenant_zone() -> None:
    # 2025-03-03T11:00 in Tokyo is 02:00 UTC, within a day of NOW; in Los Angeles it is 19:00 UTC, beyond it.
    event = {**VALID["click"], "timestamp": "2025-03-03T11:00:00"}
    one_ok(event, tz="Asia/Tokyo")
    assert "in the future" in one_errors(event, tz="America/Los_Angeles")["timestamp"][0]


def test_status_enums() -> None:
    assert "status" in one_errors({**VALID["order_status"], "status": "teleported"})
    assert "status" in one_errors({**VALID["payment"], "status": "shipped"})
    assert "status" in one_errors({**VALID["order_status"], "status": 3})


def test_stock_and_metric_ranges() -> None:
    assert "stock_level" in one_errors({**VALID["stock"], "stock_level": -1})
    assert "threshold" in one_errors({**VALID["stock"], "threshold": True})
    assert one_ok({**VALID["stock"], "stock_level": "7", "threshold": "2"})["threshold"] == 2
    errors = one_errors({**VALID["metric"], "metric": "Bad Name!", "value": "nan"})
    assert set(errors) == {"metric", "value"}
    assert one_ok({**VALID["metric"], "metric": "Revenue.EU", "value": "3"})["metric"] == "revenue.eu"
    assert "value" in one_errors({**VALID["metric"], "value": False})


def test_attributes_limits() -> None:
    big = {"blob": "x" * 4100}
    assert "4096" in one_errors({**VALID["click"], "attributes": big})["attributes"][0]
    # Multi-byte characters count as bytes: 1500 x 'é' is 3000 bytes, fine; 2100 is not.
    one_ok({**VALID["click"], "attributes": {"t": "é" * 1500}})
    assert "attributes" in one_errors({**VALID["click"], "attributes": {"t": "é" * 2100}})
    assert "attributes" in one_errors({**VALID["click"], "attributes": ["not", "an", "object"]})
    assert "attributes" in one_errors({**VALID["click"], "attributes": {"x": float("nan")}})


def test_unknown_field_is_rejected_with_hint() -> None:
    errors = one_errors({**VALID["order"], "ammount": "10"})
    assert list(errors) == ["ammount"]
    assert "did you mean 'amount'" in errors["ammount"][0]
    errors = one_errors({**VALID["click"], "color": "red"})
    assert "attributes" in errors["color"][0]


def test_unhashable_type_value() -> None:
    assert "not a valid event type" in one_errors({"type": ["order"], "timestamp": TS})["type"][0]
    assert "not a valid event type" in one_errors({"type": {"x": 1}, "timestamp": TS})["type"][0]


def test_many_unknown_fields_are_summarised() -> None:
    errors = one_errors({**VALID["click"], **{f"custom_{i}": i for i in range(30)}})
    assert len([k for k in errors if k.startswith("custom_")]) == 10
    assert errors["non_field_errors"] == ["20 more unknown fields not listed."]


def test_non_object_and_raw_error_entries() -> None:
    result = run([[1, 2], "x", RawError({"non_field_errors": ["Line 3: malformed JSON"]}), None])
    assert [r["index"] for r in result.rejected] == [0, 1, 2, 3]
    assert "JSON object" in result.rejected[0]["errors"]["non_field_errors"][0]
    assert result.rejected[2]["errors"] == {"non_field_errors": ["Line 3: malformed JSON"]}


def test_mixed_batch_keeps_order_and_indexes() -> None:
    batch: list[Any] = []
    expected_valid, expected_rejected = [], []
    for i in range(40):
        event_type = EVENT_TYPES[i % len(EVENT_TYPES)]
        event = {**VALID[event_type], "event_id": f"e{i}"}
        if i % 5 == 3:
            event["timestamp"] = "garbage"
            expected_rejected.append(i)
        else:
            expected_valid.append(i)
        batch.append(event)
    result = run(batch)
    assert [i for i, _ in result.valid] == expected_valid
    assert [e["event_id"] for _, e in result.valid] == [f"e{i}" for i in expected_valid]
    assert [r["index"] for r in result.rejected] == expected_rejected
    assert all(list(r["errors"]) == ["timestamp"] for r in result.rejected)


def test_tenant_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        validate_batch([], tenant_tz="Mars/Olympus", tenant_currency="EUR", now=NOW)
    with pytest.raises(ValueError):
        validate_batch([], tenant_tz="UTC", tenant_currency="EURO", now=NOW)


def test_copy_rows_follow_columns() -> None:
    event = one_ok({**VALID["order"], "attributes": {"k": "v"}})
    (row,) = list(copy_rows([event]))
    assert len(row) == len(COPY_COLUMNS)
    as_dict = dict(zip(COPY_COLUMNS, row, strict=True))
    assert as_dict["attributes"] == '{"k":"v"}'
    assert as_dict["amount"] == Decimal("19.99")
    assert as_dict["occurred_at"] == event["occurred_at"]
    assert "timestamp" not in COPY_COLUMNS
