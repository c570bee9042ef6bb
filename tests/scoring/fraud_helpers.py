"""Small payment factories and runners shared by the Django-side scoring tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone


def payment(event_id: str, at: datetime, *, customer: str | None, amount: float, ip: str = "", device: str = "",
            card: str = "", status: str = "succeeded", country: str = "FR", channel: str = "web") -> dict[str, Any]:
    event: dict[str, Any] = {"event_id": event_id, "type": "payment", "timestamp": at.isoformat(),
                             "amount": f"{amount:.2f}", "status": status, "country": country, "channel": channel,
                             "store_id": "web-eu", "payment_method": "card"}
    if customer:
        event["customer_id"] = customer
    if ip:
        event["ip"] = ip
    if device:
        event["device_id"] = device
    if card:
        event["attributes"] = {"card_fingerprint": card}
    return event


def normal_payments(prefix: str, n: int, start: datetime) -> list[dict[str, Any]]:
    """n different returning-looking customers, one ordinary payment each, spread over hours."""
    return [payment(f"{prefix}-n{i}", start + timedelta(minutes=17 * i), customer=f"{prefix}-cust{i}",
                    amount=25 + (i * 7) % 50, ip=f"10.1.{i // 200}.{i % 200}", device=f"{prefix}-dev{i}",
                    card=f"{prefix}-card{i}") for i in range(n)]


def card_testing(prefix: str, n: int, start: datetime) -> list[dict[str, Any]]:
    """One customer, IP and device trying n cards within minutes, mostly failing."""
    return [payment(f"{prefix}-ct{i}", start + timedelta(seconds=40 * i), customer=f"{prefix}-tester",
                    amount=1 + (i % 3), ip="203.0.113.9", device=f"{prefix}-ctdev", card=f"{prefix}-ctcard{i}",
                    status="failed" if i % 4 else "succeeded") for i in range(n)]


def recent(hours: float = 6) -> datetime:
    return (timezone.now() - timedelta(hours=hours)).replace(microsecond=0)


def ingest_and_consume(tenant: Any, events: list[dict[str, Any]], source: str = "api") -> int:
    """Store events like the API does and run the batch consumers in-process (on_commit never
    fires inside a test transaction). Returns the batch id."""
    from ingestion.services import events_ingest
    from ingestion.tasks import batch_run

    result = events_ingest(tenant=tenant, raw_events=events, source=source)
    assert not result.rejected, result.rejected
    assert batch_run(result.batch_id) == "done"
    return int(result.batch_id)


def purchase(tag: str, i: int, at: datetime, *, customer: str, amount: float = 60.0) -> list[dict[str, Any]]:
    """One purchase as a shop sends it: the order, then its payment a few seconds later."""
    order = {"event_id": f"{tag}-ord{i}", "type": "order", "timestamp": at.isoformat(), "customer_id": customer,
             "order_id": f"{tag}-O{i}", "amount": f"{amount:.2f}", "store_id": "web-eu", "country": "FR",
             "channel": "web"}
    pay = payment(f"{tag}-pay{i}", at + timedelta(seconds=20), customer=customer, amount=amount,
                  ip=f"10.9.{len(tag)}.{i % 200}", device=f"{tag}-dev", card=f"{tag}-card")
    pay["order_id"] = f"{tag}-O{i}"
    return [order, pay]


def returned(tag: str, i: int, line: int, at: datetime, *, customer: str, amount: float = 30.0) -> dict[str, Any]:
    """A return of one line of order `tag`-O`i`."""
    return {"event_id": f"{tag}-ret{i}-{line}", "type": "return", "timestamp": at.isoformat(), "customer_id": customer,
            "order_id": f"{tag}-O{i}", "amount": f"{amount:.2f}", "store_id": "web-eu", "country": "FR",
            "channel": "web"}


def serial_returner(tag: str, start: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(purchases, returns): five orders over two days, then returns of two lines of the first order
    and of one line of orders 2, 3 and 4, a few hours apart (returned orders: 1, 1, 2, 3, 4 of 5)."""
    customer = f"{tag}-cust"
    buys = [e for i in range(5) for e in purchase(tag, i, start + timedelta(hours=9 * i), customer=customer)]
    back = start + timedelta(hours=40)
    rets = [returned(tag, 0, 0, back, customer=customer), returned(tag, 0, 1, back + timedelta(minutes=5), customer=customer)]
    rets += [returned(tag, i, 0, back + timedelta(hours=2 * i), customer=customer) for i in (1, 2, 3)]
    return buys, rets
