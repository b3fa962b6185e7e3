"""Waiting on the programs the tests start."""

from __future__ import annotations

import subprocess
import time

import pytest


def wait_for_stderr(process: subprocess.Popen[str], marker: str, seconds: float = 30) -> str:
    """The first line of ``process``'s standard error (a text pipe) that holds ``marker``;
    fails the test when the process ends first, or when a line comes after ``seconds``."""
    assert process.stderr is not None
    deadline = time.monotonic() + seconds
    for line in process.stderr:
        if marker in line:
            return line
        assert time.monotonic() < deadline, f"no {marker!r} from the process in {seconds} s"
    pytest.fail(f"the process exited ({process.wait()}) before saying {marker!r}")
