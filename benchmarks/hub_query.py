"""How fast ``GET /entries`` answers queries over a large store (1,000,000 entries by default).

Fills a SQLite store in this process (``SqliteStore.insert`` in batches, no hub) with varied
entries — HTTP to twenty services from a few hundred clients, every method and status, paths
with ids, and one entry in fifty of another protocol — then starts the hub on it in a process
of its own (``hub_ingest.py --serve``) and times each query over HTTP, newest page of 100 first
as the dashboard asks. Prints the median and 90th percentile per query, with what the answer
said (rows, rows scanned, pushed down to SQL, partial at the scan budget).

    python benchmarks/hub_query.py                       # fill 1,000,000 entries, then query
    python benchmarks/hub_query.py --db /tmp/q.db --keep # keep the store for the next run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
sys.path.insert(0, str(BENCH_DIR))

from hub_ingest import ACCESS_TOKEN, free_port, http_entry  # noqa: E402

from mizu_server.store import SqliteStore  # noqa: E402

SERVICES = (
    "orders", "users", "payments", "catalogue", "carts", "shipping", "auth", "search",
    "reviews", "stock", "billing", "email", "gateway", "images", "ratings", "recs",
    "sessions", "tax", "wishlist", "coupons",
)  # fmt: skip
OTHER_PROTOCOLS = ("amqp", "kafka")
FILL_BATCH = 5000
START_MS = 1_700_000_000_000
STEP_MS = 10
"""Entries are this many milliseconds apart: a million span about three hours."""


def varied_entry(number: int) -> dict[str, Any]:
    entry = http_entry(number)
    service = SERVICES[(number * 7) % len(SERVICES)]
    entry["timestamp"] = START_MS + number * STEP_MS
    entry["dst"] = {"ip": f"10.1.0.{(number * 7) % len(SERVICES) + 1}", "port": 8080,
                    "name": f"{service}.shop", "namespace": "shop"}  # fmt: skip
    entry["src"]["ip"] = f"10.0.{number % 31}.{number % 17 + 1}"
    path = f"/api/v1/{service}/{number % 10_000}"
    entry["request"]["path"] = path
    entry["request"]["url"] = f"http://{service}.shop{path}"
    if number % 50 == 0:
        macro = OTHER_PROTOCOLS[number // 50 % len(OTHER_PROTOCOLS)]
        entry["protocol"] = {**entry["protocol"], "name": macro, "macro": macro}
    return entry


def fill(path: str, entries: int) -> float:
    store = SqliteStore(path, max_bytes=1 << 40)
    started = time.perf_counter()
    for start in range(store.count(), entries, FILL_BATCH):
        store.insert([varied_entry(n) for n in range(start, min(start + FILL_BATCH, entries))])
        if start % 100_000 == 0:
            print(f"  filled {start:,}", file=sys.stderr, flush=True)
    store.close()
    return time.perf_counter() - started


def queries(entries: int) -> dict[str, str]:
    middle = START_MS + entries // 2 * STEP_MS
    return {
        "everything": "",
        "method": 'request.method == "DELETE"',
        "status": "response.status == 500",
        "path prefix": 'request.path.startsWith("/api/v1/orders/42")',
        "dst name": 'dst.name == "payments.shop"',
        "src ip": 'src.ip == "10.0.3.4"',
        "rare protocol": "amqp",
        "time range (1 min, mid-store)": f"timestamp >= {middle} and timestamp < {middle + 60_000}",
        "combined": 'http and response.status >= 500 and dst.name == "orders.shop"',
        "contains (not indexable)": 'request.path.contains("/4242")',
        "json() (not indexable)": "response.content.text.json().id == 4242",
    }


async def time_queries(port: int, texts: dict[str, str], runs: int) -> list[dict[str, Any]]:
    results = []
    headers = {"Authorization": f"Bearer {ACCESS_TOKEN}"}
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", headers=headers) as session:
        for name, text in texts.items():
            seconds = []
            meta: dict[str, Any] = {}
            for _ in range(runs):
                started = time.perf_counter()
                async with session.get("/entries", params={"query": text, "limit": "100"}) as r:
                    body = await r.json()
                seconds.append(time.perf_counter() - started)
                meta = body["meta"]
            seconds.sort()
            results.append(
                {
                    "query": name,
                    "medianMs": round(statistics.median(seconds) * 1000, 1),
                    "p90Ms": round(seconds[int(0.9 * (len(seconds) - 1))] * 1000, 1),
                    "rows": meta["current"],
                    "scanned": meta["scanned"],
                    "pushedDown": meta["pushedDown"],
                    "partial": meta.get("partial", False),
                }
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15, help="timings per query")
    parser.add_argument("--db", help="the store's file (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep --db (filled once, reused)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        db_path = arguments.db or os.path.join(directory, "entries.db")
        fill_seconds = fill(db_path, arguments.entries)
        print(f"filled {arguments.entries:,} entries in {fill_seconds:.0f} s", file=sys.stderr)
        port = free_port()
        hub = subprocess.Popen(
            [
                *(sys.executable, str(BENCH_DIR / "hub_ingest.py"), "--serve", str(port)),
                *(db_path, str(1 << 40)),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert hub.stdout is not None
        try:
            if hub.stdout.readline().strip() != "ready":
                raise RuntimeError("the hub did not start")
            results = asyncio.run(time_queries(port, queries(arguments.entries), arguments.runs))
        finally:
            hub.send_signal(signal.SIGTERM)
            hub.communicate(timeout=60)
        if arguments.db and not arguments.keep:
            Path(db_path).unlink()
    print(f"{'query':<32} {'median ms':>10} {'p90 ms':>8} {'rows':>5} {'scanned':>9}  notes")
    for row in results:
        notes = ("SQL" if row["pushedDown"] else "Python re-check") + (
            ", partial" if row["partial"] else ""
        )
        print(
            f"{row['query']:<32} {row['medianMs']:>10} {row['p90Ms']:>8} {row['rows']:>5} "
            f"{row['scanned']:>9,}  {notes}"
        )
    if arguments.json:
        document = {"entries": arguments.entries, "queries": results}
        Path(arguments.json).write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
