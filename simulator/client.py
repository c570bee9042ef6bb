"""A small HTTP client for a running PulseEcom platform (the simulator's only way in).

It speaks the public contract (DESIGN.md "Public contract (v1)") with an API key, so the management
commands `simulate`, `evaluate_scenario` and `demo_feed` exercise exactly what an integrator would.

- Every request has a timeout.
- Connection errors, timeouts, 5xx and 429 are retried with exponential backoff and jitter; other 4xx
  are the caller's mistake and raised at once. Retrying `POST /api/v1/events` is safe because event ids
  make ingestion idempotent: events stored by an attempt whose answer was lost come back as duplicates.
- Pagination follows the cursor of the answer (`next_cursor`, else the `next` URL's query) against
  our own base URL, so a server behind a proxy that builds `next` with another host still works.

Pure: httpx and stdlib only, no Django.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

DEFAULT_TIMEOUT = 60.0  # a 10,000-event POST on a busy 2-core machine can take seconds
DEFAULT_RETRIES = 5
MAX_BACKOFF = 15.0
USER_AGENT = "PulseEcom-simulator/1.0"


class PulseClientError(Exception):
    """A request that did not succeed. `status_code` is None for transport errors."""

    def __init__(self, message: str, *, status_code: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


@dataclass
class IngestCounts:
    """Running totals of `POST /api/v1/events` answers."""

    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    requests: int = 0
    rejections: list[dict[str, Any]] = field(default_factory=list)  # the first few, for the user

    def add(self, sent: int, answer: Mapping[str, Any], keep: int = 5) -> None:
        rejected = answer.get("rejected") or []
        self.sent += sent
        self.accepted += int(answer.get("accepted", 0))
        self.duplicates += int(answer.get("duplicates", 0))
        self.rejected += len(rejected) if isinstance(rejected, list) else int(rejected)
        self.requests += 1
        if isinstance(rejected, list) and len(self.rejections) < keep:
            self.rejections.extend(rejected[: keep - len(self.rejections)])

    @property
    def complete(self) -> bool:
        """Every sent event is stored: now or by an earlier run."""
        return self.accepted + self.duplicates == self.sent

    def summary(self) -> dict[str, int]:
        return {"sent": self.sent, "accepted": self.accepted, "duplicates": self.duplicates,
                "rejected": self.rejected}


def _transient(status: int) -> bool:
    return status == 429 or status >= 500


class PulseClient:
    """`PulseClient(base_url, api_key)`; use as a context manager or call `close()`."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = DEFAULT_TIMEOUT,
                 retries: int = DEFAULT_RETRIES, backoff: float = 0.5,
                 transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url, transport=transport, follow_redirects=False,
            timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
            headers={"Authorization": f"Api-Key {api_key}", "User-Agent": USER_AGENT,
                     "Accept": "application/json"},
        )

    def __enter__(self) -> PulseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ transport

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json_body: Any = None, content: bytes | None = None, headers: Mapping[str, str] | None = None,
                ok: Iterable[int] = (200, 201, 202)) -> httpx.Response:
        """One call with retries on transient failures; raises PulseClientError otherwise."""
        ok = tuple(ok)
        if json_body is not None:
            content = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(method, path, params=params, content=content, headers=headers)
            except httpx.TransportError as exc:  # connect refused/reset, timeouts: worth another try
                if attempt > self.retries:
                    raise PulseClientError(f"{method} {path}: {type(exc).__name__}: {exc} "
                                           f"(after {attempt} attempts)") from exc
                self._sleep(self._delay(attempt, None))
                continue
            if response.status_code in ok:
                return response
            if _transient(response.status_code) and attempt <= self.retries:
                self._sleep(self._delay(attempt, response.headers.get("Retry-After")))
                continue
            raise PulseClientError(f"{method} {path}: HTTP {response.status_code}: {response.text[:500]}",
                                   status_code=response.status_code, body=_json_or_text(response))

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(MAX_BACKOFF, max(0.0, float(retry_after)))
            except ValueError:
                pass
        base = min(MAX_BACKOFF, self.backoff * 2 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)  # jitter: parallel senders do not retry in step

    # ------------------------------------------------------------------ endpoints

    def post_events(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """`POST /api/v1/events`; returns {"accepted", "duplicates", "rejected": [...]}.

        A batch in which nothing is valid answers 400 with the same counts: that is an answer, not an
        error, so it is returned like a 200."""
        try:
            return dict(self.request("POST", "/api/v1/events", json_body=events).json())
        except PulseClientError as exc:
            if exc.status_code == 400 and isinstance(exc.body, dict) and "accepted" in exc.body:
                return exc.body
            raise

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return dict(self.request("GET", path, params=params).json())

    def status(self) -> dict[str, Any]:
        return self.get_json("/api/v1/status")

    def tenant(self) -> dict[str, Any]:
        return self.get_json("/api/v1/tenant")

    def iter_pages(self, path: str, params: Mapping[str, Any] | None = None, *,
                   limit: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """Each page's `results`, following the cursor until there is none."""
        query: dict[str, Any] = {**(params or {}), "limit": limit}
        while True:
            body = self.get_json(path, query)
            yield list(body.get("results") or [])
            cursor = body.get("next_cursor") or _cursor_from(body.get("next"))
            if not cursor:
                return
            query["cursor"] = cursor

    def anomalies(self, **filters: Any) -> list[dict[str, Any]]:
        """Every anomaly matching `filters`, newest first."""
        return [a for page in self.iter_pages("/api/v1/anomalies", filters) for a in page]

    def metric_series(self, metric: str, *, start: str, end: str, granularity: str = "hour",
                      **filters: str) -> list[tuple[str, float]]:
        """The (ungrouped) KPI series as (time, value); undefined ratios come back as NaN."""
        body = self.get_json("/api/v1/metrics", {"metric": metric, "granularity": granularity,
                                                 "from": start, "to": end, **filters})
        series = body.get("series") or []
        if not series:
            return []
        return [(p["t"], float("nan") if p.get("value") is None else float(p["value"]))
                for p in series[0].get("points", [])]

    def wait_until_up(self, timeout: float = 120.0, *, interval: float = 1.0,
                      stop: threading.Event | None = None) -> dict[str, Any]:
        """Poll `GET /api/v1/status` until the server answers (any health); raises after `timeout`."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if stop is not None and stop.is_set():
                raise PulseClientError("stopped while waiting for the server")
            try:
                response = self._http.get("/api/v1/status")
                if response.status_code == 200:
                    return dict(response.json())
                if response.status_code in (401, 403):  # up, but the key is wrong: waiting will not help
                    raise PulseClientError(f"GET /api/v1/status: HTTP {response.status_code}: {response.text[:300]}",
                                           status_code=response.status_code)
                last = PulseClientError(f"HTTP {response.status_code}", status_code=response.status_code)
            except httpx.TransportError as exc:
                last = exc
            if stop is not None:
                stop.wait(interval)
            else:
                self._sleep(interval)
        raise PulseClientError(f"{self.base_url} did not answer /api/v1/status within {timeout:.0f}s: {last}")


def _cursor_from(next_url: str | None) -> str | None:
    if not next_url:
        return None
    values = parse_qs(urlsplit(next_url).query).get("cursor")
    return values[0] if values else None


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:2000]


def send_batches(client: PulseClient, batches: Iterable[list[dict[str, Any]]], *,
                 counts: IngestCounts | None = None,
                 on_batch: Callable[[int, dict[str, Any]], None] | None = None,
                 stop: threading.Event | None = None) -> IngestCounts:
    """POST each batch, adding its answer to `counts`; `stop` ends the loop between batches."""
    counts = counts or IngestCounts()
    for batch in batches:
        if stop is not None and stop.is_set():
            break
        if not batch:
            continue
        answer = client.post_events(batch)
        counts.add(len(batch), answer)
        if on_batch is not None:
            on_batch(len(batch), answer)
    return counts


def rate_batches(events: Iterable[dict[str, Any]], *, rate: float, max_batch: int = 500,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> Iterator[list[dict[str, Any]]]:
    """Yield events at a fixed `rate` (events per second) in batches of at most `max_batch`.

    Events are released on a schedule (event k is due at start + k / rate) rather than by sleeping
    a fixed time per batch, so the time spent sending does not slow the average rate down."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    # A batch covers at most half a second of sending, so pacing stays smooth at any rate.
    size = max(1, min(max_batch, int(rate / 2) or 1))
    start = clock()
    batch: list[dict[str, Any]] = []
    released = 0
    for ev in events:
        batch.append(ev)
        if len(batch) >= size:
            released += len(batch)
            wait = start + released / rate - clock()
            if wait > 0:
                sleep(wait)
            yield batch
            batch = []
    if batch:
        wait = start + (released + len(batch)) / rate - clock()
        if wait > 0:
            sleep(wait)
        yield batch
