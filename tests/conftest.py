"""Fixtures shared by the whole suite."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="session")
def turns_plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test plugins of ``tests/data/plugins/mizu-turns`` installed, as a third party's
    would be, into a directory of their own; put it on PYTHONPATH (or sys.path) to use them."""
    target = tmp_path_factory.mktemp("turns-plugins")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT / "tests" / "data" / "plugins" / "mizu-turns"),
        ],
        check=True,
    )
    return target


@pytest.fixture
def turns_on_path(turns_plugins: Path) -> Iterator[Path]:
    """The test plugins importable by this process, for as long as the test runs."""
    sys.path.insert(0, str(turns_plugins))
    try:
        yield turns_plugins
    finally:
        sys.path.remove(str(turns_plugins))
        for name in [module for module in sys.modules if module.startswith("mizu_turns")]:
            del sys.modules[name]


@pytest.fixture
def python_sigint() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt, as in a program started from a terminal: a suite
    started in the background by a shell without job control inherits it ignored."""
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
