"""Load test of live capture: does every request become an entry at N requests/s?

Starts Debian's nginx on 127.0.0.1 (a process of its own, config and logs in a temporary
folder), `mizu tap --local -i lo -o jsonl` (its entries counted from stdout), then wrk paced
by a Lua `delay()` (whole milliseconds per connection: 32 connections with 1 ms give about
15-30k requests/s on loopback) for `--seconds`. Prints wrk's requests and rate, the entries of
nginx's port, the kernel's drops from mizu's closing summary, the CPU seconds of mizu's two
processes (the hub; the tapper, which it forks: all their threads) and the load average before
and after. Only loopback traffic; bounded in time.

    python benchmarks/load_tap.py --seconds 60 --connections 32
    python benchmarks/load_tap.py --mizu-option=--no-redact   # without redaction
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from run import add_mizu_option

NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type application/json; return 200 '{{"ok":true}}'; }}
    }}
}}
"""
WRK_SCRIPT = "function delay() return {delay} end\n"
_REQUESTS = re.compile(r"(\d+) requests in ([\d.]+)(ms|s|m)\b")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0}
_DROPS = re.compile(r"([\d,]+) packets dropped by the kernel")
_DASHBOARD = re.compile(r"dashboard at (http://[^/ ]+)/\?token=(\S+)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tapper_pid(hub_pid: int) -> int:
    """The tapper process of ``mizu tap --local``: the hub's one child."""
    (child,) = Path(f"/proc/{hub_pid}/task/{hub_pid}/children").read_text().split()
    return int(child)


def tapper_report(base: str, token: str) -> dict[str, Any]:
    """The tapper process's last report, as the hub's ``/status/tap`` shows it."""
    request = urllib.request.Request(
        f"{base}/status/tap", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        report: dict[str, Any] = orjson.loads(reply.read())["local"]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--delay-ms", type=int, default=1, help="wrk delay() per request")
    add_mizu_option(parser)
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"{tool} is missing: apt-get install nginx-light wrk")
    folder = Path(tempfile.mkdtemp(prefix="mizu-load-"))
    port = free_port()
    (folder / "nginx.conf").write_text(NGINX_CONF.format(dir=folder, port=port))
    (folder / "pace.lua").write_text(WRK_SCRIPT.format(delay=args.delay_ms))
    nginx = subprocess.run(["/usr/sbin/nginx", "-c", str(folder / "nginx.conf")], check=True)
    assert nginx.returncode == 0
    load_before = os.getloadavg()
    mizu = subprocess.Popen(
        [sys.executable, "-m", "mizu_cli", "tap", "--local", "-i", "lo", "-o", "jsonl",
         "--no-browser", "--db", str(folder / "entries.db"), "-p", str(free_port()),
         *args.mizu_option],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    entries = 0
    unreadable: list[bytes] = []

    def count() -> None:
        # bytes and orjson: this reader shares the machine with mizu, wrk and nginx (an entry's
        # line: json.loads on text 10 us, orjson on bytes 5 us)
        nonlocal entries
        assert mizu.stdout is not None
        for line in mizu.stdout:
            try:
                entry = orjson.loads(line)
                to_nginx = entry["dst"]["port"] == port
            except (ValueError, TypeError, KeyError):
                unreadable.append(line)  # reported: mizu's -o jsonl must write whole entries
                continue
            if to_nginx and entry.get("response"):
                entries += 1

    counter = threading.Thread(target=count, daemon=True)
    counter.start()
    try:
        assert mizu.stderr is not None
        while b"dashboard at" not in (started := mizu.stderr.readline()):
            if mizu.poll() is not None:
                sys.exit("mizu tap --local did not start")
        dashboard = _DASHBOARD.search(started.decode())
        assert dashboard, started
        # the rest of stderr on a thread of its own: communicate() would read standard output
        # too, taking chunks from under the counting thread (lines were seen cut)
        said: list[bytes] = []
        stderr = mizu.stderr
        stderr_reader = threading.Thread(target=lambda: said.extend(stderr), daemon=True)
        stderr_reader.start()
        time.sleep(1)
        tapper = tapper_pid(mizu.pid)
        hub_start, tapper_start = cpu_seconds(mizu.pid), cpu_seconds(tapper)
        wrk = subprocess.run(
            ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d",
             f"{args.seconds}s", "-s", str(folder / "pace.lua"), f"http://127.0.0.1:{port}/"],
            capture_output=True,
            text=True,
            check=True,
            timeout=args.seconds + 60,
        )  # fmt: skip
        # A capture that fell behind still has packets in the kernel's buffer: wait until no
        # entry comes for 3 s (at most 120 s), so that what was not read is counted as lost.
        settled, seen, wait_end = time.monotonic(), entries, time.monotonic() + 120
        while time.monotonic() - settled < 3 and time.monotonic() < wait_end:
            time.sleep(0.5)
            if entries != seen:
                settled, seen = time.monotonic(), entries
        hub_cpu = cpu_seconds(mizu.pid) - hub_start
        tapper_cpu = cpu_seconds(tapper) - tapper_start
        reported = tapper_report(dashboard.group(1), dashboard.group(2))
        mizu.send_signal(signal.SIGINT)
        mizu.wait(timeout=60)
        counter.join(timeout=10)
        stderr_reader.join(timeout=10)
        summary = b"".join(said).decode(errors="replace")
    finally:
        if mizu.poll() is None:
            mizu.kill()
        pid = (folder / "nginx.pid").read_text().strip()
        os.kill(int(pid), signal.SIGTERM)
    found = _REQUESTS.search(wrk.stdout)
    assert found, wrk.stdout
    requests = int(found.group(1))
    elapsed = float(found.group(2)) * _UNIT_SECONDS[found.group(3)]
    drops = _DROPS.search(summary)
    print(f"wrk: {requests:,} requests in {elapsed:.1f} s = {requests / elapsed:,.0f}/s "
          f"({args.connections} connections, delay {args.delay_ms} ms)")  # fmt: skip
    print(f"mizu: {entries:,} answered entries for port {port} "
          f"({entries / requests:.2%} of the requests); kernel drops: "
          f"{drops.group(1) if drops else 'not reported'}")  # fmt: skip
    for name, cpu in (("tapper", tapper_cpu), ("hub", hub_cpu)):
        print(f"mizu's {name} process, CPU during the load and its catching up: {cpu:.1f} s "
              f"= {cpu / elapsed:.0%} of one core over the load's {elapsed:.0f} s, "
              f"{cpu / max(entries, 1) * 1e6:.1f} us per entry")  # fmt: skip
    frames = max(reported.get("sentFrames", 0), 1)
    print(f"the hub's status of its tapper: {reported['capture']['kernelDropped']:,} kernel drops, "
          f"{reported['ackedEntries']:,} entries acknowledged in {frames:,} frames "
          f"({reported['ackedEntries'] / frames:.0f} per frame), {reported['shed']:,} shed, "
          f"tapper CPU {reported['cpuSeconds']:.1f} s")  # fmt: skip
    if unreadable:
        print(f"mizu printed {len(unreadable):,} lines that are not JSON entries, such as:")
        for line in unreadable[:3]:
            print(f"  {line[:300]!r}")
    print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    print("mizu's closing summary:", summary.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
