"""Redis's own time in the enrichment script (scoring/enrich/state.lua) per payment: what caps how
many payments one Redis process can enrich per second, whatever the workers do.

    .venv/bin/python bench/enrich_redis.py [--redis redis://127.0.0.1:6379/9] [--batches 4] [--n 10000] [--per-customer 8]

Enriches `--batches` consecutive batches of `--n` synthetic payments (the scoring_async bench's
generator: one customer per 8 payments, 1 % fraud), then reads Redis's `INFO commandstats`:
`script_us_per_event` is the EVALSHA time, `commands_us_per_event` the time of the commands the
script called. A second pass with `redis.call` replaced by a stub (every record missing) gives
`lua_only_us_per_event`, the script's own Lua. The rest is crossing from Lua into Redis per call.
Uses and flushes the given Redis database. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scoring.enrich import engine  # noqa: E402
from scoring.enrich.synthetic import payments  # noqa: E402

_STUB = """local call = function(cmd, ...)
  if cmd == 'MGET' then local r = {}; for i = 1, select('#', ...) do r[i] = false end; return r end
  return 1
end"""


def _use_script(source: str) -> None:
    engine.LUA_SOURCE = source
    engine.LUA_SHA = hashlib.sha1(source.encode("utf-8")).hexdigest()


def _run(client: redis.Redis, batches: list[list[dict]]) -> tuple[float, dict]:
    client.flushdb()
    client.config_resetstat()
    enricher = engine.Enricher(client, "bench-enrich-redis", engine.EnrichConfig())
    started = time.perf_counter()
    for events in batches:
        enricher.enrich(events)
    wall = time.perf_counter() - started
    return wall, client.info("commandstats")


def payment_batches(count: int, n: int, per_customer: float) -> list[list[dict]]:
    """`count` consecutive 6-hour batches of `n` synthetic payments ending now (1 % fraud), with
    `per_customer` payments per customer per batch; event ids unique across batches."""
    start = datetime.now(UTC) - timedelta(hours=24)
    batches = []
    for b in range(count):
        events = payments(n, seed=b, fraud_rate=0.01, hours=6, n_customers=max(10, int(n / per_customer)),
                          start=start + timedelta(hours=6 * b))
        for e in events:
            e["event_id"] = f"s{b}-{e['event_id']}"
            e.pop("attributes", None)
        batches.append(events)
    return batches


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/9")
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--per-customer", type=float, default=8.0,
                    help="payments per customer per batch (6 h); 8 is the scoring_async bench's mix")
    args = ap.parse_args()
    client = redis.Redis.from_url(args.redis)
    batches = payment_batches(args.batches, args.n, args.per_customer)
    n = args.n * args.batches
    original = engine.LUA_SOURCE
    wall, stats = _run(client, batches)
    memory = client.info("memory")["used_memory"]
    keys = client.dbsize()
    client.flushdb()
    state_bytes = memory - client.info("memory")["used_memory"]
    script_us = stats.get("cmdstat_evalsha", {}).get("usec", 0)
    commands = {k.removeprefix("cmdstat_"): v for k, v in stats.items()
                if k not in ("cmdstat_evalsha", "cmdstat_config", "cmdstat_info", "cmdstat_flushdb")}
    calls = sum(v["calls"] for v in commands.values())
    _use_script(original.replace("local call = redis.call", _STUB))
    _, stub_stats = _run(client, batches)
    _use_script(original)
    client.flushdb()
    print(json.dumps({
        "bench": "enrich_redis", "payments": n, "per_customer": args.per_customer, "wall_events_per_s": round(n / wall),
        "script_us_per_event": round(script_us / n, 1),
        "commands_us_per_event": round(sum(v["usec"] for v in commands.values()) / n, 1),
        "lua_only_us_per_event": round(stub_stats.get("cmdstat_evalsha", {}).get("usec", 0) / n, 1),
        "redis_calls_per_event": round(calls / n, 1),
        "state_keys": keys, "state_bytes_per_payment": round(state_bytes / n),
        "max_payments_per_s_per_redis": round(1e6 * n / script_us) if script_us else None,
        "redis": client.info("server").get("redis_version"),
    }, separators=(",", ":")))


if __name__ == "__main__":
    main()
