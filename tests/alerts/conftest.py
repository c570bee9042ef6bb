"""Fixtures of the delivery-layer tests: a real HTTP receiver on 127.0.0.1 (webhooks, Slack), fast
backoff, Celery in eager mode, and small factories for channels, policies and anomalies."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """Records every request; answers from a queue of (status, body, headers, delay), then 200."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.responses: deque[tuple[int, bytes, dict[str, str], float]] = deque()
        self.server: ThreadingHTTPServer | None = None
        self.arrived = threading.Condition()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def respond(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, delay: float = 0.0) -> None:
        self.responses.append((status, body, headers or {}, delay))

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.requests) < count and time.monotonic() < deadline:
                self.arrived.wait(0.05)
        return list(self.requests)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, reply, headers, delay = (receiver.responses.popleft() if receiver.responses
                                             else (200, b"ok", {}, 0.0))
            with receiver.arrived:
                receiver.requests.append(Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                receiver.arrived.notify_all()
            if delay:
                time.sleep(delay)
            try:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_POST = do_GET = _handle  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rec))
    server.daemon_threads = True
    rec.server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _fast_backoff(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PULSE_HTTP_BACKOFF_SECONDS = 0.01
    settings.PULSE_BASE_URL = "https://pulse.example"


@pytest.fixture
def eager_celery() -> Iterator[None]:
    from pulse.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)  # a Monday, noon UTC


def make_anomaly(**overrides: Any) -> Any:
    from scoring.models import Anomaly

    fields: dict[str, Any] = dict(
        kind="kpi", occurred_at=T0, detected_at=T0, metric="revenue", dimensions={"channel": "email"},
        entity="", score=0.93, severity="high", direction="down", expected=2100.0, observed=1234.0,
        impact={"revenue_at_risk": 866.0, "currency": "USD"},
        reasons=[{"detector": "robust_z", "text": "revenue 6.1 MAD below the seasonal median", "value": 6.1, "threshold": 4.0}],
        detectors={"robust_z": 0.93}, root_cause=[{"dimension": "campaign", "value": "spring-sale", "contribution": -0.71}],
    )
    fields.update(overrides)
    return Anomaly(**fields)


def record(*anomalies: Any, capture: Any) -> list[Any]:
    """Record anomalies the way detectors do and run the on-commit hand-off (eager Celery)."""
    from scoring.services import anomalies_record

    with capture(execute=True):
        return anomalies_record(anomalies=list(anomalies))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)
