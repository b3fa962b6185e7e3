"""``mizu tap --local`` or ``--pcap`` (tapper and hub) in a process of its own, for tests that
need real captured traffic behind the hub's API."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.server.multiservice import free_port
from tests.support.processes import Dashboard, wait_for_stderr


@contextmanager
def local_tap(db_dir: Path, *source: str) -> Iterator[Dashboard]:
    """Run ``mizu tap`` on ``source`` (e.g. ``--local -i lo``); yield where its dashboard is
    once it serves (for ``--pcap``, once the files are replayed)."""
    if "--local" in source and os.geteuid() != 0:
        pytest.fail("live capture on lo needs root (run the live tests as root)")
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "mizu_cli", "tap", *source, "--no-browser"),
            *("--db", str(db_dir / "entries.db"), "-p", str(port)),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        dashboard = Dashboard.parse(wait_for_stderr(process, "dashboard at"))
        if "--pcap" in source:
            wait_for_stderr(process, "still serving")
        yield dashboard
    finally:
        process.terminate()
        process.wait(timeout=15)
