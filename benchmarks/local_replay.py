"""How fast local mode turns a capture into stored entries: ``mizu tap --pcap FILE``.

Runs ``mizu tap --pcap FILE --no-browser`` (tapper and hub in one process, as ``mizu tap
--local``) on a fresh database and a free port, and stops the clock when it says the replay is
stored ("replayed N file(s), E entries; still serving"): every entry has gone through
dissection, redaction, the hub's ingest and the store's commit by then. Entries/s = E ÷ that
time, start-up included. Then it stops mizu with SIGINT and reads its CPU time and peak RSS
(``wait4``).

On a shared machine the wall time swings with the load: the CPU seconds are the steadier
figure, and ``--repeat`` gives the range.

    python benchmarks/local_replay.py benchmarks/data/http-keepalive-300k.pcap --repeat 3
    python benchmarks/local_replay.py FILE --tree /path/to/another/checkout   # compare trees
    MIZU_PURE_PYTHON=1 MIZU_PLUGINS=http,tcp python benchmarks/local_replay.py FILE
    python benchmarks/local_replay.py FILE --mizu-option=--no-redact   # without redaction
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from run import add_mizu_option

REPO_ROOT = Path(__file__).resolve().parent.parent
REPLAYED = re.compile(rb"replayed \d+ file\(s\), ([\d,]+) entries")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def replay(pcap: Path, tree: Path, timeout: float, options: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mizu-local-replay-") as directory:
        command = [
            sys.executable,
            "-m",
            "mizu_cli.main",
            "tap",
            "--pcap",
            str(pcap),
            "--no-browser",
            "--db",
            str(Path(directory) / "entries.db"),
            "--max-entries-db-size",
            "10GB",
            "-p",
            str(free_port()),
            *options,
        ]
        # the checkout's own core and plugins, whatever is installed
        paths = [tree, *sorted(tree.glob("plugins/mizu_*")), *sorted(tree.glob("examples/mizu-*"))]
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, paths))}
        started = time.monotonic()
        child = subprocess.Popen(
            command, cwd=tree, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        assert child.stderr is not None
        said = b""
        entries = -1
        deadline = started + timeout
        while time.monotonic() < deadline:
            line = child.stderr.readline()
            if not line:
                break
            said += line
            found = REPLAYED.search(line)
            if found:
                entries = int(found.group(1).replace(b",", b""))
                break
        elapsed = time.monotonic() - started
        child.send_signal(signal.SIGINT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if entries < 0:
            raise SystemExit(f"mizu did not finish the replay:\n{said.decode(errors='replace')}")
        return {
            "entries": entries,
            "wall_s": round(elapsed, 3),
            "entries_per_s": round(entries / elapsed),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "peak_rss_mb": round(usage.ru_maxrss * 1024 / 1e6, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pcap", type=Path)
    parser.add_argument("--tree", type=Path, default=REPO_ROOT, help="the checkout to run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--json", metavar="FILE", help="also write the runs as JSON")
    add_mizu_option(parser)
    arguments = parser.parse_args()
    runs = []
    for _ in range(arguments.repeat):
        run = replay(
            arguments.pcap.resolve(),
            arguments.tree.resolve(),
            arguments.timeout,
            arguments.mizu_option,
        )
        runs.append(run)
        print(json.dumps(run), flush=True)
    for key in ("wall_s", "entries_per_s", "cpu_s", "peak_rss_mb"):
        values = [run[key] for run in runs]
        print(f"{key:>14}  {min(values):,} .. {max(values):,}")
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
