"""simulator.client against a real HTTP server on 127.0.0.1 (no Django): retries, errors, paging, pacing."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from simulator.client import IngestCounts, PulseClient, PulseClientError, rate_batches, send_batches

Handler = Callable[[BaseHTTPRequestHandler, int], tuple[int, Any]]


class _Server:
    """Answers every request with `handler(request, n)` (n = 1-based request count) and records them."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append((self.command, self.path, dict(self.headers), body))
                code, payload = outer.handler(self, len(outer.requests))
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], _Server]]:
    servers: list[_Server] = []

    def start(handler: Handler) -> _Server:
        servers.append(_Server(handler))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _client(url: str, **kw: Any) -> PulseClient:
    return PulseClient(url, "pk_test", backoff=0.01, **kw)


def test_retries_5xx_then_succeeds_and_sends_the_key(serve: Callable[[Handler], _Server]) -> None:
    server = serve(lambda req, n: (503, {"error": "busy"}) if n < 3 else (200, {"accepted": 2, "duplicates": 0,
                                                                              "rejected": []}))
    with _client(server.url) as client:
        answer = client.post_events([{"event_id": "a"}, {"event_id": "b"}])
    assert answer["accepted"] == 2
    assert len(server.requests) == 3
    method, path, headers, body = server.requests[-1]
    assert (method, path) == ("POST", "/api/v1/events")
    assert headers["Authorization"] == "Api-Key pk_test"
    assert json.loads(body) == [{"event_id": "a"}, {"event_id": "b"}]


def test_gives_up_after_the_retries(serve: Callable[[Handler], _Server]) -> None:
    server = serve(lambda req, n: (500, {"error": "boom"}))
    with _client(server.url, retries=2) as client, pytest.raises(PulseClientError) as err:
        client.status()
    assert err.value.status_code == 500
    assert len(server.requests) == 3


def test_4xx_is_not_retried(serve: Callable[[Handler], _Server]) -> None:
    server = serve(lambda req, n: (403, {"error": "forbidden"}))
    with _client(server.url) as client, pytest.raises(PulseClientError) as err:
        client.tenant()
    assert err.value.status_code == 403 and len(server.requests) == 1


def test_an_all_invalid_batch_is_an_answer_not_an_error(serve: Callable[[Handler], _Server]) -> None:
    body = {"error": "invalid", "accepted": 0, "duplicates": 0, "rejected": [{"index": 0, "errors": {"type": ["x"]}}]}
    server = serve(lambda req, n: (400, body))
    counts = send_batches(_client(server.url), [[{"type": "nope"}]])
    assert counts.summary() == {"sent": 1, "accepted": 0, "duplicates": 0, "rejected": 1}
    assert not counts.complete and counts.rejections == body["rejected"]


def test_connection_errors_are_retried_then_reported() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    slept: list[float] = []
    client = PulseClient(f"http://127.0.0.1:{port}", "k", retries=3, backoff=0.5, sleep=slept.append)
    with pytest.raises(PulseClientError) as err:
        client.status()
    assert err.value.status_code is None
    assert len(slept) == 3 and slept[0] < slept[2]  # exponential backoff (with jitter)


def test_timeouts_apply(serve: Callable[[Handler], _Server]) -> None:
    def slow(req: BaseHTTPRequestHandler, n: int) -> tuple[int, Any]:
        time.sleep(1.0)
        return 200, {}

    server = serve(slow)
    started = time.monotonic()
    with _client(server.url, timeout=0.2, retries=0) as client, pytest.raises(PulseClientError):
        client.status()
    assert time.monotonic() - started < 0.9


def test_pagination_follows_the_cursor_against_the_base_url(serve: Callable[[Handler], _Server]) -> None:
    pages = {None: ([{"id": 3}, {"id": 2}], "c1"), "c1": ([{"id": 1}], None)}

    def handler(req: BaseHTTPRequestHandler, n: int) -> tuple[int, Any]:
        cursor = parse_qs(urlsplit(req.path).query).get("cursor", [None])[0]
        results, nxt = pages[cursor]
        # `next` names another host (as behind a proxy): the client must only take its cursor.
        return 200, {"results": results, "next": nxt and f"http://elsewhere:9/api/v1/anomalies?cursor={nxt}&limit=2"}

    server = serve(handler)
    with _client(server.url) as client:
        assert [a["id"] for a in client.anomalies(kind="kpi")] == [3, 2, 1]
    assert "kind=kpi" in server.requests[0][1] and "cursor=c1" in server.requests[1][1]


def test_rate_batches_keep_the_rate_with_a_fake_clock() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    events = [{"n": i} for i in range(250)]
    batches = list(rate_batches(events, rate=100, max_batch=1000, clock=lambda: now[0], sleep=sleep))
    assert [e for b in batches for e in b] == events
    assert max(len(b) for b in batches) == 50  # half a second of sending per batch
    assert now[0] == pytest.approx(2.5)
    with pytest.raises(ValueError):
        next(rate_batches(events, rate=0))


def test_ingest_counts() -> None:
    c = IngestCounts()
    c.add(3, {"accepted": 2, "duplicates": 1, "rejected": []})
    assert c.complete
    c.add(2, {"accepted": 1, "duplicates": 0, "rejected": [{"index": 1, "errors": {}}]})
    assert not c.complete and c.summary() == {"sent": 5, "accepted": 3, "duplicates": 1, "rejected": 1}
