"""Replay an input the fuzz runner saved: ``python -m tests.fuzz.replay FILE``.

It runs in this process, as the engine runs plugins: a plugin stuck on it is interrupted by the
watchdog after the stall limit (``MIZU_STALL_SECONDS``), which logs where it was stuck."""

from __future__ import annotations

import importlib
import logging
import sys
import time
from pathlib import Path

from mizu_core.testkit import run_bytes
from tests.fuzz.harness import load


def main(arguments: list[str]) -> int:
    if len(arguments) != 1:
        print("usage: python -m tests.fuzz.replay FILE", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO)
    plugin, chunks, settings = load(Path(arguments[0]))
    started = time.monotonic()
    outputs = run_bytes(chunks, importlib.import_module(plugin), settings=settings)
    errors = outputs.stats["plugin_errors"]
    print(
        f"{plugin} with {settings}: {len(chunks)} chunks, {len(outputs.entries)} entries in "
        f"{time.monotonic() - started:.2f} s; plugin errors: {errors or 'none'}"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
