"""End-to-end alert latency: `POST /api/v1/events` of an anomalous payment → (a) the signed webhook request
arriving at a local receiver, (b) the `anomaly.created` message arriving on a connected `/ws/feed/`
client, both while a steady background load of ordinary events (default 1,000 events/s) is ingested.

Runs against a live server (`make serve`), which must allow the local receiver as a webhook target:

    PULSE_ALLOW_PRIVATE_WEBHOOKS=1 make serve                 # terminal 1
    .venv/bin/python bench/e2e_latency.py --api-key pk_...    # terminal 2 (an admin key of a tenant)

Options (or environment): --base-url (PULSE_BENCH_URL, default http://localhost:8000), --api-key
(PULSE_API_KEY), --rate events/s (1000), --warmup seconds of background load before the first probe (30),
--probes (40), --interval seconds between probes (1.5), --timeout per probe (30), --json FILE to append the
figures. The script creates its own webhook channel and policy (removed at the end) and raises the tenant's
`alerts.rate_limit_per_hour` for the run (restored at the end) so no probe is folded into a digest.

A probe is a payment far outside the tenant's normal traffic (new customer, new device, amount ×100 the
background median). A probe that no detector flags shows as "missed": that is a detection figure, not a
delivery one, and is reported separately.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import random
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

try:
    import websockets
except ImportError:  # pragma: no cover - listed in pyproject
    websockets = None


# ----------------------------------------------------------------------------- measurements

@dataclass
class Probe:
    event_id: str
    sent_at: float  # time.monotonic() just before the POST
    webhook_at: float | None = None
    ws_at: float | None = None


@dataclass
class Run:
    probes: dict[str, Probe] = field(default_factory=dict)
    background_sent: int = 0
    background_rejected: int = 0
    background_seconds: float = 0.0
    webhook_requests: int = 0
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def match(self, event_ids: list[str], *, kind: str, at: float) -> None:
        with self.lock:
            for event_id in event_ids:
                probe = self.probes.get(event_id)
                if probe is None:
                    continue
                if kind == "webhook" and probe.webhook_at is None:
                    probe.webhook_at = at
                elif kind == "ws" and probe.ws_at is None:
                    probe.ws_at = at


def _event_ids(body: dict[str, Any]) -> list[str]:
    """Event ids in an alert webhook body, a digest, or a feed message."""
    ids: list[str] = []
    anomaly = body.get("anomaly") or (body.get("data") if body.get("type") == "anomaly.created" else None)
    if isinstance(anomaly, dict):
        ids += [str(i) for i in anomaly.get("event_ids") or []]
    for item in body.get("items") or []:
        ids += _event_ids(item)
    return ids


# ----------------------------------------------------------------------------- webhook receiver

def start_receiver(run: Run, secret_box: dict[str, str], host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            arrived = time.monotonic()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            secret = secret_box.get("secret", "")
            timestamp = self.headers.get("X-Pulse-Timestamp", "")
            expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
            with run.lock:
                run.webhook_requests += 1
                if not hmac.compare_digest(expected, self.headers.get("X-Pulse-Signature", "")):
                    run.bad_signatures += 1
            with contextlib.suppress(ValueError):
                run.match(_event_ids(json.loads(body)), kind="webhook", at=arrived)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ----------------------------------------------------------------------------- traffic

PAYMENT_METHODS = ["card", "card", "card", "paypal", "apple_pay"]
COUNTRIES = ["US", "US", "US", "GB", "DE", "FR"]


def background_event(rng: random.Random) -> dict[str, Any]:
    # A large customer base, each with its own device and IP: ordinary traffic, not a velocity attack
    # (5,000 customers at 500 transactions/s would each buy every 10 s, which rules rightly flag).
    number = rng.randrange(2_000_000)
    customer = f"bench-c{number}"
    kind = rng.random()
    base = {"event_id": f"bench-bg-{uuid.uuid4().hex}", "timestamp": datetime.now(UTC).isoformat(),
            "customer_id": customer, "channel": rng.choice(["seo", "email", "ads", "direct"]),
            "country": rng.choice(COUNTRIES)}
    if kind < 0.5:
        return {**base, "type": "click", "session_id": f"s{rng.randrange(20000)}", "product_id": f"p{rng.randrange(300)}"}
    if kind < 0.8:
        return {**base, "type": "order", "order_id": f"bench-o-{uuid.uuid4().hex[:12]}",
                "amount": round(rng.lognormvariate(3.8, 0.5), 2), "quantity": rng.randint(1, 3)}
    return {**base, "type": "payment", "order_id": f"bench-o-{uuid.uuid4().hex[:12]}",
            "amount": round(rng.lognormvariate(3.8, 0.5), 2), "status": "succeeded",
            "payment_method": rng.choice(PAYMENT_METHODS), "device_id": f"d-{customer}",
            "ip": f"10.{number % 250}.{number // 250 % 250}.{number // 62_500 % 250}"}


def probe_event(event_id: str, amount: float) -> dict[str, Any]:
    fresh = uuid.uuid4().hex[:10]
    return {"event_id": event_id, "type": "payment", "timestamp": datetime.now(UTC).isoformat(),
            "customer_id": f"bench-new-{fresh}", "order_id": f"bench-probe-{fresh}", "amount": amount,
            "status": "succeeded", "payment_method": "card", "device_id": f"bench-dev-{fresh}",
            "ip": f"203.0.113.{random.randrange(1, 250)}", "country": "NG", "channel": "direct"}


async def background_load(client: httpx.AsyncClient, run: Run, *, rate: int, stop: asyncio.Event) -> None:
    """Steady `rate` events/s in batches sent 10 times a second (keeps up by skipping sleeps when late)."""
    rng = random.Random(7)
    ticks_per_second = 10
    per_tick = max(1, rate // ticks_per_second)
    started = time.monotonic()
    tick = 0
    in_flight: set[asyncio.Task[None]] = set()

    async def send(batch: list[dict[str, Any]]) -> None:
        try:
            response = await client.post("/api/v1/events", json=batch)
            if response.status_code < 300:
                body = response.json()
                run.background_sent += int(body.get("accepted", 0)) + int(body.get("duplicates", 0))
                run.background_rejected += len(body.get("rejected", []))
            else:
                run.background_rejected += len(batch)
        except httpx.HTTPError:
            run.background_rejected += len(batch)

    while not stop.is_set():
        batch = [background_event(rng) for _ in range(per_tick)]
        task = asyncio.create_task(send(batch))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        tick += 1
        delay = started + tick / ticks_per_second - time.monotonic()
        if delay > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
    if in_flight:
        await asyncio.gather(*in_flight, return_exceptions=True)
    run.background_seconds = time.monotonic() - started


async def feed_listener(ws_url: str, run: Run, ready: asyncio.Event, stop: asyncio.Event) -> None:
    async with websockets.connect(ws_url, max_size=2**22) as ws:
        hello = json.loads(await ws.recv())
        if hello.get("type") != "hello":
            raise RuntimeError(f"unexpected first feed message: {hello}")
        ready.set()
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except TimeoutError:
                continue
            arrived = time.monotonic()
            with contextlib.suppress(ValueError):
                run.match(_event_ids(json.loads(raw)), kind="ws", at=arrived)


# ----------------------------------------------------------------------------- setup / teardown

def setup_tenant(client: httpx.Client, receiver_url: str) -> tuple[int, int, dict[str, Any]]:
    tenant = client.get("/api/v1/tenant")
    tenant.raise_for_status()
    config = tenant.json().get("config") or {}
    bench_config = json.loads(json.dumps(config))
    bench_config.setdefault("alerts", {})["rate_limit_per_hour"] = 10_000
    client.patch("/api/v1/tenant", json={"config": bench_config}).raise_for_status()
    channel = client.post("/api/v1/alert-channels", json={"kind": "webhook", "name": "bench e2e receiver",
                                                          "config": {"url": receiver_url}})
    if channel.status_code != 201:
        raise SystemExit(f"cannot create the webhook channel ({channel.status_code}): {channel.text}\n"
                         "Is the server running with PULSE_ALLOW_PRIVATE_WEBHOOKS=1?")
    policy = client.post("/api/v1/alert-policies", json={"name": "bench e2e", "channels": [channel.json()["id"]],
                                                         "min_severity": "low", "cooldown_seconds": 0})
    policy.raise_for_status()
    return channel.json()["id"], policy.json()["id"], {"config": config, "secret": channel.json()["config"]["secret"]}


def teardown_tenant(client: httpx.Client, channel_id: int, policy_id: int, config: dict[str, Any]) -> None:
    client.delete(f"/api/v1/alert-policies/{policy_id}")
    client.delete(f"/api/v1/alert-channels/{channel_id}")
    client.patch("/api/v1/tenant", json={"config": config})


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))]


def summary(name: str, values: list[float]) -> dict[str, Any]:
    if not values:
        return {"path": name, "n": 0}
    ms = [v * 1000 for v in values]
    return {"path": name, "n": len(ms), "p50_ms": round(statistics.median(ms), 1), "p95_ms": round(pct(ms, 0.95), 1),
            "max_ms": round(max(ms), 1)}


# ----------------------------------------------------------------------------- main

async def measure(args: argparse.Namespace) -> dict[str, Any]:
    run = Run()
    secret_box: dict[str, str] = {}
    receiver = start_receiver(run, secret_box, args.receiver_host, args.receiver_port)
    receiver_url = f"http://{args.receiver_host}:{receiver.server_address[1]}/bench-hook"
    headers = {"Authorization": f"Api-Key {args.api_key}"}
    sync_client = httpx.Client(base_url=args.base_url, headers=headers, timeout=30)
    channel_id, policy_id, saved = setup_tenant(sync_client, receiver_url)
    secret_box["secret"] = saved["secret"]
    ws_url = args.base_url.replace("http", "ws", 1).rstrip("/") + f"/ws/feed/?api_key={args.api_key}"
    stop_load, stop_feed, ready = asyncio.Event(), asyncio.Event(), asyncio.Event()
    try:
        async with httpx.AsyncClient(base_url=args.base_url, headers=headers, timeout=30,
                                     limits=httpx.Limits(max_connections=20)) as client:
            feed_task = asyncio.create_task(feed_listener(ws_url, run, ready, stop_feed))
            await asyncio.wait_for(ready.wait(), timeout=15)
            load_task = asyncio.create_task(background_load(client, run, rate=args.rate, stop=stop_load))
            print(f"warming up: {args.warmup}s of background load at {args.rate} events/s", file=sys.stderr)
            await asyncio.sleep(args.warmup)
            for n in range(args.probes):
                event_id = f"bench-probe-{uuid.uuid4().hex}"
                with run.lock:
                    run.probes[event_id] = Probe(event_id, time.monotonic())
                response = await client.post("/api/v1/events", json=probe_event(event_id, args.probe_amount))
                if response.status_code >= 300 or response.json().get("rejected"):
                    raise SystemExit(f"probe rejected: {response.status_code} {response.text[:300]}")
                print(f"probe {n + 1}/{args.probes} sent", file=sys.stderr, end="\r")
                await asyncio.sleep(args.interval)
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline and any(p.webhook_at is None or p.ws_at is None for p in run.probes.values()):
                await asyncio.sleep(0.2)
            stop_load.set()
            await load_task
            stop_feed.set()
            await feed_task
    finally:
        teardown_tenant(sync_client, channel_id, policy_id, saved["config"])
        receiver.shutdown()
    probes = list(run.probes.values())
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "base_url": args.base_url,
        "background_rate_target": args.rate,
        "background_rate_achieved": round(run.background_sent / run.background_seconds, 1) if run.background_seconds else 0,
        "background_rejected": run.background_rejected, "probes": len(probes),
        "webhook": summary("webhook", [p.webhook_at - p.sent_at for p in probes if p.webhook_at]),
        "websocket": summary("websocket", [p.ws_at - p.sent_at for p in probes if p.ws_at]),
        "missed_webhook": sum(p.webhook_at is None for p in probes),
        "missed_websocket": sum(p.ws_at is None for p in probes),
        "webhook_requests": run.webhook_requests, "bad_signatures": run.bad_signatures,
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default=os.environ.get("PULSE_BENCH_URL", "http://localhost:8000"))
    parser.add_argument("--api-key", default=os.environ.get("PULSE_API_KEY", ""))
    parser.add_argument("--rate", type=int, default=1000, help="background events per second")
    parser.add_argument("--warmup", type=float, default=30.0)
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--interval", type=float, default=1.5)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--probe-amount", type=float, default=9_500.0)
    parser.add_argument("--receiver-host", default="127.0.0.1")
    parser.add_argument("--receiver-port", type=int, default=0)
    parser.add_argument("--json", help="append the figures as one JSON line to this file")
    args = parser.parse_args()
    if not args.api_key:
        # `make bench` runs every script without arguments: say what is needed instead of failing the loop.
        print("e2e_latency: skipped (needs a running server and an admin API key: --api-key or PULSE_API_KEY; "
              "see the module docstring)")
        return
    if websockets is None:
        parser.error("the `websockets` package is needed")
    result = asyncio.run(measure(args))
    print(json.dumps(result, indent=2))
    for path in ("webhook", "websocket"):
        s = result[path]
        if s["n"]:
            print(f"| e2e {path} | {s['n']} probes | p50 {s['p50_ms']} ms | p95 {s['p95_ms']} ms | max {s['max_ms']} ms "
                  f"| background {result['background_rate_achieved']} ev/s |")
    if args.json:
        with open(args.json, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
