"""Every built-in plugin and the example Redis plugin on mutated real captures, each input under
a time limit (tests/fuzz/harness.py): no hang, no exception escaping the plugin.

The default suite runs a few seconds per plugin; ``nox -s fuzz`` runs 100,000 inputs per plugin
(``MIZU_FUZZ_INPUTS``). A failing input is saved and named in the failure; replay it with
``python -m tests.fuzz.replay FILE``.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from mizu_core.compiled import package_build
from mizu_core.testkit import run_bytes
from tests.fuzz import stuck_plugin
from tests.fuzz.harness import Plan, Target, fuzz, load
from tests.fuzz.mutations import Streams, mutated_connection
from tests.fuzz.targets import TARGETS, redis_streams


@pytest.mark.parametrize("name", TARGETS)
def test_the_captures_give_connections(name: str) -> None:
    assert len(TARGETS[name].streams()) >= 2


@pytest.mark.parametrize("name", TARGETS)
def test_mutated_traffic_neither_hangs_nor_raises(name: str) -> None:
    target = TARGETS[name]
    report = fuzz(target, Plan.from_environment())
    print(report.summary())
    for package, build in report.builds.items():
        if package_build(package) is not None:  # a package with compiled modules runs them
            assert build.startswith("compiled"), f"{package}: {build}"
    assert report.inputs > 0
    failures = [
        f"{f.kind} (seed {f.seed}), saved as {f.saved}: {f.detail}" for f in report.failures
    ]
    assert failures == [], "\n".join(failures)


# -- the runner itself -------------------------------------------------------------------------


def stuck_streams() -> Streams:
    return ((b"hello STUCK world", b""), (b"hello RAISE world", b""), (b"hello world", b""))


def test_a_hang_and_an_exception_are_failures_saved_for_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIZU_FUZZ_FAILURES", str(tmp_path))
    target = Target("tests.fuzz.stuck_plugin", stuck_streams, (0,))
    report = fuzz(target, Plan(inputs=12, seconds=0, time_limit=1.0, seed=0, workers=2))
    assert report.inputs == 12
    kinds = {failure.kind for failure in report.failures}
    assert kinds == {"hang", "plugin error"}, report.failures
    assert report.builds["tests"] == "plain Python"
    for failure in report.failures:
        assert failure.saved.parent == tmp_path
        plugin, chunks, settings = load(failure.saved)
        assert plugin == "tests.fuzz.stuck_plugin" and settings == {}
        marker = b"STUCK" if failure.kind == "hang" else b"RAISE"
        assert any(marker in data for _direction, data in chunks), failure
    # replayed in one process, the engine's watchdog isolates the stuck plugin
    monkeypatch.setenv("MIZU_STALL_SECONDS", "0.5")
    hang = next(f for f in report.failures if f.kind == "hang")
    _plugin, chunks, settings = load(hang.saved)
    outputs = run_bytes(chunks, stuck_plugin, settings=settings)
    assert list(outputs.stats["plugin_errors"]) == ["stuck_plugin"]


def test_the_same_seed_gives_the_same_input() -> None:
    claims = TARGETS["redis"].size_claims
    first = mutated_connection(random.Random(7), redis_streams(), claims)
    assert first == mutated_connection(random.Random(7), redis_streams(), claims)
    assert first != mutated_connection(random.Random(8), redis_streams(), claims)
