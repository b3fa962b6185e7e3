"""Recording real traffic with tcpdump for tests (loopback or namespaces the tests made)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def record(path: str | Path, bpf: str, interface: str = "lo") -> Iterator[Path]:
    """Capture ``bpf`` on ``interface`` into ``path`` while the block runs.

    Waits until tcpdump is listening before the block starts, and until it has flushed every
    packet after the block ends, so the file holds all the block's traffic.
    """
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        raise RuntimeError("tcpdump is not installed (apt-get install tcpdump)")
    path = Path(path)
    process = subprocess.Popen(
        [
            tcpdump,
            "-i",
            interface,
            "--immediate-mode",  # without it the last packets are lost when tcpdump stops
            "-Z",
            "root",  # keep root: dropping to the tcpdump user makes files the tests can't replace
            "-B",
            "131072",
            "-s",
            "0",
            "-U",
            "-w",
            str(path),
            bpf,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    line = process.stderr.readline()  # "tcpdump: listening on lo, ..." once it captures
    if "listening" not in line:
        process.kill()
        raise RuntimeError(f"tcpdump did not start: {line.strip()}")
    try:
        yield path
    finally:
        time.sleep(0.2)  # let the last packets of the block reach the capture buffer
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
