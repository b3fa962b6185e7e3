"""The dashboard under load: 1M stored entries and 1k new ones a second.

Fills a SQLite store directly with ``--entries`` HTTP entries (``hub_ingest.http_entry``), starts
the hub on it (``hub_ingest.py --serve``, its own process), feeds ``--rate`` new entries a second
through ``/wsTapper`` as a tapper would (frames every 100 ms), and drives Debian's headless
Chromium with Playwright through phases: following the live list, arrow-key selection, scrolling
back through history (older pages loaded from the hub, the window staying bounded), jumping back
to the live edge, and a filter over the whole store. It reports frame times (requestAnimationFrame
intervals), input latency (key event to the next frame after it was handled), click-to-detail
time, the JS heap after a forced GC and the number of DOM nodes at the end of each phase.

    python benchmarks/dashboard_bench.py                       # 1,000,000 entries, 1,000/s
    python benchmarks/dashboard_bench.py --entries 100000 --json result.json
    python benchmarks/dashboard_bench.py --db /tmp/1m.db       # reuse a filled store
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
from playwright.sync_api import CDPSession, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
sys.path.insert(0, str(BENCH_DIR))

from hub_ingest import ACCESS_TOKEN, TOKEN, free_port, http_entry  # noqa: E402

from mizu_core.emit import pack_entries  # noqa: E402
from mizu_server.store import SqliteStore  # noqa: E402
from tests.frontend.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

FILL_BATCH = 20_000
MAX_DB_BYTES = 1 << 40
HUB_WAIT_MS = 60_000
"""How long to wait for the hub's answers (slow under this load: see the report)."""

# Installed in the page through the DevTools protocol (the page's CSP forbids eval, not CDP).
PROBES = """() => {
  const bench = (window.__bench = { frames: [], keys: [] });
  let last = performance.now();
  const tick = (now) => { bench.frames.push(now - last); last = now; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  document.addEventListener("keydown", (event) => {
    const start = event.timeStamp;
    requestAnimationFrame(() => setTimeout(() => bench.keys.push(performance.now() - start)));
  }, true);
}"""


def fill(path: Path, entries: int) -> float:
    started = time.perf_counter()
    store = SqliteStore(path, MAX_DB_BYTES)
    for start in range(store.count(), entries, FILL_BATCH):
        store.insert([http_entry(n) for n in range(start, min(start + FILL_BATCH, entries))])
    store.close()
    return time.perf_counter() - started


class Feeder(threading.Thread):
    """A tapper sending ``rate`` entries a second, in frames every 100 ms, until stopped."""

    def __init__(self, port: int, rate: int, first: int) -> None:
        super().__init__(daemon=True)
        self.port, self.rate, self.next = port, rate, first
        self.sent = 0
        # ids unique to this run: a reused store would drop repeated ids as duplicates
        self.tapper = f"live{int(time.time())}"
        self.stopping = threading.Event()

    def run(self) -> None:
        asyncio.run(self.feed())

    async def feed(self) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        url = f"http://127.0.0.1:{self.port}/wsTapper"
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            session.ws_connect(url, params={"tapper": self.tapper}) as socket,
        ):
            reader = asyncio.create_task(self.read_acks(socket))
            per_frame = max(1, self.rate // 10)
            tick = time.perf_counter()
            while not self.stopping.is_set():
                batch = [
                    http_entry(n, tapper=self.tapper)
                    for n in range(self.next, self.next + per_frame)
                ]
                for entry in batch:  # live entries carry the time they are sent
                    entry["timestamp"] = int(time.time() * 1000)
                await socket.send_bytes(pack_entries(batch))
                self.next += per_frame
                self.sent += per_frame
                tick += 0.1
                await asyncio.sleep(max(0.0, tick - time.perf_counter()))
            reader.cancel()

    @staticmethod
    async def read_acks(socket: aiohttp.ClientWebSocketResponse) -> None:
        async for _ in socket:
            pass


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def frame_figures(page: Page) -> dict[str, Any]:
    frames = page.evaluate(
        "() => { const f = window.__bench.frames; window.__bench.frames = []; return f; }"
    )
    frames = frames[1:]
    return {
        "frames": len(frames),
        "fps": round(len(frames) / (sum(frames) / 1000), 1) if frames else 0,
        "frameMsP50": round(statistics.median(frames), 1) if frames else 0,
        "frameMsP95": round(percentile(frames, 0.95), 1),
        "frameMsP99": round(percentile(frames, 0.99), 1),
        "frameMsMax": round(max(frames, default=0), 1),
        "framesOver50ms": sum(1 for frame in frames if frame > 50),
    }


def memory(page: Page, cdp: CDPSession) -> dict[str, Any]:
    cdp.send("HeapProfiler.collectGarbage")
    metrics = {
        item["name"]: item["value"] for item in cdp.send("Performance.getMetrics")["metrics"]
    }
    return {
        "jsHeapUsedMB": round(metrics["JSHeapUsedSize"] / 1e6, 1),
        "domNodes": int(metrics["Nodes"]),
        "rowsInWindow": page.evaluate("() => window.mizu.list.rows.length"),
        "rowElements": page.evaluate("() => document.querySelectorAll('#viewport .row').length"),
    }


def phase(page: Page, cdp: CDPSession, seconds: float, action: Any = None) -> dict[str, Any]:
    """Run ``action`` (or just watch) for ``seconds``; frame times, rows received, memory."""
    page.evaluate(
        "() => { window.__bench.frames = []; window.__bench.received = window.mizu.list.received; }"
    )
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        if action is not None:
            action()
        else:
            page.wait_for_timeout(250)
    elapsed = time.perf_counter() - started
    received = page.evaluate("() => window.mizu.list.received - window.__bench.received")
    return {
        **frame_figures(page),
        "liveRowsPerSecond": round(received / elapsed),
        **memory(page, cdp),
    }


def measure(url: str, seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        try:
            run_phases(page, cdp, url, seconds, results)
        except PlaywrightTimeout as error:
            # the hub did not answer in time: keep the figures measured so far
            results["stoppedBy"] = str(error).splitlines()[0]
        browser.close()
    return results


def run_phases(
    page: Page, cdp: CDPSession, url: str, seconds: float, results: dict[str, Any]
) -> None:
    started = time.perf_counter()
    page.goto(url)
    page.wait_for_function(
        "() => window.mizu && window.mizu.list.rows.length > 0", timeout=HUB_WAIT_MS
    )
    results["firstRowsMs"] = round((time.perf_counter() - started) * 1000)
    page.evaluate(PROBES)

    results["following"] = phase(page, cdp, seconds)

    page.locator("#viewport").focus()

    def press() -> None:
        page.keyboard.press("ArrowUp")
        page.wait_for_timeout(50)

    results["arrowKeys"] = phase(page, cdp, 4, press)
    keys = page.evaluate("() => window.__bench.keys")
    results["arrowKeys"]["inputToFrameMsP50"] = round(statistics.median(keys), 1)
    results["arrowKeys"]["inputToFrameMsP95"] = round(percentile(keys, 0.95), 1)
    results["arrowKeys"]["inputToFrameMsMax"] = round(max(keys), 1)

    page.mouse.move(300, 400)

    def scroll_back() -> None:
        page.mouse.wheel(0, -4000)
        page.wait_for_timeout(60)

    results["scrollingBack"] = phase(page, cdp, seconds, scroll_back)
    oldest, newest = page.evaluate(
        "() => [window.mizu.list.rows[0].seq, window.mizu.list.rows.at(-1).seq]"
    )
    results["scrollingBack"]["windowSeqRange"] = [oldest, newest]

    clicks = []
    shown = (
        "() => { const list = window.mizu.list;"
        " const row = list.rows.find((r) => r.id === list.selectedId);"
        " const title = document.querySelector('#detail:not([hidden]) .detail-title .summary');"
        " return Boolean(row && title && title.textContent === row.summary); }"
    )
    timed_out = 0
    for index in range(10):
        page.keyboard.press("Escape")  # nothing selected: the pane closes
        started = time.perf_counter()
        page.locator("#viewport .row:not([hidden]) .cell.time").nth(5 + index).click()
        try:
            page.wait_for_function(shown, timeout=HUB_WAIT_MS)
        except PlaywrightTimeout:
            timed_out += 1
            continue
        clicks.append((time.perf_counter() - started) * 1000)
    results["clickToDetailMs"] = {
        "p50": round(statistics.median(clicks), 1) if clicks else None,
        "max": round(max(clicks), 1) if clicks else None,
        "timedOut": timed_out,
    }

    page.click("#jump")
    page.wait_for_function(
        "() => window.mizu.list.stick && !window.mizu.list.hasNewer", timeout=HUB_WAIT_MS
    )
    results["backToLive"] = phase(page, cdp, seconds)

    started = time.perf_counter()
    query = 'response.status == 500 and request.path.startsWith("/api/v1/items")'
    page.fill("#filter", query)
    page.press("#filter", "Enter")
    page.wait_for_function(
        "(query) => { const list = window.mizu.list; return list.query === query"
        " && !list.loadingHistory && list.rows.length > 0; }",
        arg=query,
        timeout=HUB_WAIT_MS,
    )
    results["filteredFirstRowsMs"] = round((time.perf_counter() - started) * 1000)
    results["filtered"] = phase(page, cdp, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=1000, help="new entries a second")
    parser.add_argument("--seconds", type=float, default=15, help="length of each live phase")
    parser.add_argument("--db", type=Path, help="store to fill (kept) instead of a temporary one")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        db = arguments.db or Path(directory) / "entries.db"
        fill_seconds = fill(db, arguments.entries)
        print(
            f"store: {arguments.entries:,} entries ({db.stat().st_size / 1e6:,.0f} MB), "
            f"filled in {fill_seconds:.0f} s",
            file=sys.stderr,
        )
        port = free_port()
        hub = subprocess.Popen(
            [
                sys.executable,
                str(BENCH_DIR / "hub_ingest.py"),
                "--serve",
                str(port),
                str(db),
                str(MAX_DB_BYTES),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert hub.stdout is not None
        if hub.stdout.readline().strip() != "ready":
            raise RuntimeError("the hub did not start")
        feeder = Feeder(port, arguments.rate, first=arguments.entries)
        feeder.start()
        try:
            figures = measure(f"http://127.0.0.1:{port}/?token={ACCESS_TOKEN}", arguments.seconds)
        finally:
            feeder.stopping.set()
            feeder.join(10)
            hub.terminate()
            try:  # the hub drains what it was sent before it stops; not part of the figures
                hub.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                hub.kill()
                hub.communicate()
    report = {
        "storedEntries": arguments.entries,
        "liveRatePerSecond": arguments.rate,
        "liveEntriesSent": feeder.sent,
        **figures,
    }
    print(json.dumps(report, indent=2))
    if arguments.json:
        arguments.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
