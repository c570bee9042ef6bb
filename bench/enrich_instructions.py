"""Instructions Redis executes per payment in the enrichment script (scoring/enrich/state.lua): a
count that stays the same from run to run whatever else the machine does, unlike its time (this
box's speed moves by up to 70 % within the hour). For comparing two versions of the script.

    .venv/bin/python bench/enrich_instructions.py [--n 5000] [--batches 2] [--per-customer 8] [--chunk 1000]

Starts its own redis-server under `valgrind --tool=callgrind` on a free port, enriches `--batches`
consecutive batches of `--n` synthetic payments (bench/enrich_redis.py's generator), stops the
server and reads the program's total instruction count; a second server that only starts and stops
gives the fixed cost to subtract. Also lists the named Redis functions with the largest inclusive
share (MessagePack encoding and decoding, ...). Needs valgrind (Debian package). Takes a minute or two.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import emit  # noqa: E402
from enrich_redis import payment_batches  # noqa: E402
from ingest_bench_common import free_port  # noqa: E402

from scoring.enrich import engine  # noqa: E402

_TOTAL = re.compile(r"([\d,]+)\s+\(100\.0+%\)\s+PROGRAM TOTALS")
_FUNCTION = re.compile(r"^\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+\?\?\?:([A-Za-z_]\w*)(?:'\d+)? \[")
_SHOWN = ("mp_pack", "mp_unpack", "lua_pushlstring", "lua_settable", "lua_next", "sha1hex", "setCommand",
          "mgetCommand", "luaRedisGenericCommand")


def _under_callgrind(out: str, work: list[list[dict]], chunk: int) -> None:
    port = free_port()
    server = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "redis-server",
                               "--port", str(port), "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(600):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.1)
    enricher = engine.Enricher(client, "bench-instructions", engine.EnrichConfig(chunk_size=chunk))
    for events in work:
        enricher.enrich(events)
    try:
        client.shutdown(nosave=True)
    except redis.ConnectionError:
        pass  # the server closes the connection as it exits
    server.wait(timeout=120)


def _annotate(out: str, inclusive: bool) -> str:
    args = ["callgrind_annotate"] + (["--inclusive=yes"] if inclusive else []) + [out]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5_000)
    ap.add_argument("--batches", type=int, default=2)
    ap.add_argument("--per-customer", type=float, default=8.0)
    ap.add_argument("--chunk", type=int, default=engine.EnrichConfig().chunk_size, help="events per script call")
    args = ap.parse_args()
    batches = payment_batches(args.batches, args.n, args.per_customer)
    with tempfile.TemporaryDirectory() as tmp:
        counts = []
        for name, work in (("idle", []), ("work", batches)):
            out = f"{tmp}/{name}.out"
            _under_callgrind(out, work, args.chunk)
            counts.append(int(_TOTAL.search(_annotate(out, False)).group(1).replace(",", "")))
        shares = {}
        for line in _annotate(f"{tmp}/work.out", True).splitlines():
            m = _FUNCTION.match(line)
            if m and m.group(3) in _SHOWN and m.group(3) not in shares:
                shares[m.group(3)] = float(m.group(2))
    n = args.n * args.batches
    emit("enrich_instructions", {"payments": n, "per_customer": args.per_customer, "chunk": args.chunk,
                                 "instructions_per_payment": round((counts[1] - counts[0]) / n),
                                 "inclusive_share_pct": shares})


if __name__ == "__main__":
    main()
