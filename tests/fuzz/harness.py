"""The fuzz runner: mutated real traffic through one plugin, each input under a time limit.

Inputs are made here, each from a seed (:func:`~tests.fuzz.mutations.mutated_connection`),
and run in worker processes (``spawn``ed, so they import the build the suite runs, compiled or
not). An input a worker has not finished within the time limit is a hang: the worker is killed
and replaced. An input on which the plugin raised (Mizu isolates it and counts a plugin error),
or on which the worker died, fails too. Every failing input is saved as JSON under
:data:`FAILURES_ENV` (by default ``.fuzz-failures/`` at the top of the project) and can be
replayed in one process, where the engine's watchdog names the line a stuck plugin loops on::

    python -m tests.fuzz.replay .fuzz-failures/redis-hang-1234.json

How much runs is set by the environment (``nox -s fuzz`` sets the nightly numbers):

* ``MIZU_FUZZ_INPUTS``: inputs per plugin (``nox -s fuzz``: 100000). Unset, each plugin gets
  ``MIZU_FUZZ_SECONDS`` of inputs (3 by default: the default suite's short session).
* ``MIZU_FUZZ_TIME_LIMIT``: seconds one input may take (10 by default: the slowest of 10,000
  inputs of each plugin took 1.5 s on a busy machine; a loop in one call of a plugin is cut
  sooner, by the engine's watchdog, and fails as a plugin error).
* ``MIZU_FUZZ_SEED``: where the seeds of the inputs start (0 by default).
* ``MIZU_FUZZ_WORKERS``: worker processes (1 by default).
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import multiprocessing
import os
import random
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from mizu_core import Direction
from mizu_core.compiled import package_build
from mizu_core.testkit import run_bytes
from tests.fuzz.mutations import Chunks, Streams, mutated_connection

INPUTS_ENV = "MIZU_FUZZ_INPUTS"
SECONDS_ENV = "MIZU_FUZZ_SECONDS"
TIME_LIMIT_ENV = "MIZU_FUZZ_TIME_LIMIT"
SEED_ENV = "MIZU_FUZZ_SEED"
WORKERS_ENV = "MIZU_FUZZ_WORKERS"
FAILURES_ENV = "MIZU_FUZZ_FAILURES"
NIGHTLY_INPUTS = 100_000
ROOT = Path(__file__).resolve().parents[2]

Settings = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """A plugin to fuzz: its hooks' module, the connections its inputs are mutated from, what
    an overwritten length field may claim, and the plugin settings of each input."""

    plugin: str
    """The module holding the plugin's hooks (``mizu_http.plugin``), imported by the workers."""
    streams: Callable[[], Streams]
    size_claims: tuple[int, ...]
    settings: Callable[[random.Random], Settings] = lambda _rng: {}
    check: Callable[[list[str]], str | None] = lambda _protocols: None
    """What the protocols of an input's entries must be: a complaint, or None."""


@dataclass(frozen=True)
class Plan:
    """How much to run: a number of inputs, or inputs for a number of seconds."""

    inputs: int | None
    seconds: float
    time_limit: float
    seed: int
    workers: int

    @classmethod
    def from_environment(cls) -> Plan:
        inputs = os.environ.get(INPUTS_ENV)
        return cls(
            inputs=int(inputs) if inputs else None,
            seconds=float(os.environ.get(SECONDS_ENV) or 3),
            time_limit=float(os.environ.get(TIME_LIMIT_ENV) or 10),
            seed=int(os.environ.get(SEED_ENV) or 0),
            workers=int(os.environ.get(WORKERS_ENV) or 1),
        )


@dataclass
class Failure:
    kind: str
    """``hang``, ``plugin error``, ``check`` or ``worker died``."""
    seed: int
    detail: str
    saved: Path


@dataclass
class Report:
    plugin: str
    inputs: int = 0
    seconds: float = 0.0
    slowest: float = 0.0
    builds: dict[str, str] = field(default_factory=dict)
    """The build each package of the plugin ran (from the workers)."""
    failures: list[Failure] = field(default_factory=list)

    def summary(self) -> str:
        rate = self.inputs / self.seconds if self.seconds else 0.0
        builds = ", ".join(f"{name} {build}" for name, build in self.builds.items())
        return (
            f"fuzz {self.plugin}: {self.inputs} inputs in {self.seconds:.1f} s ({rate:.0f}/s), "
            f"slowest {self.slowest * 1000:.0f} ms, {len(self.failures)} failing; {builds}"
        )


# -- the workers -------------------------------------------------------------------------------


def serve(connection: Connection, plugin: str) -> None:
    """A worker: runs each input it is sent, answers with its entries' protocols and the
    plugin errors (or the traceback of what went wrong outside the plugin)."""
    module = importlib.import_module(plugin)
    packages = {"mizu_core", plugin.split(".")[0]}
    builds = {}
    for package in sorted(packages):
        build = package_build(package)
        builds[package] = "plain Python" if build is None else build.describe()
    connection.send(builds)
    while True:
        try:
            message = connection.recv()
        except EOFError:
            return
        chunks, settings = message
        try:
            outputs = run_bytes(chunks, module, settings=settings)
            protocols = [entry["protocol"]["name"] for entry in outputs.entries]
            connection.send(("ran", protocols, outputs.stats["plugin_errors"]))
        except Exception:
            connection.send(("raised", [], traceback.format_exc()))


@dataclass
class _Worker:
    process: BaseProcess
    connection: Connection
    busy: tuple[int, Chunks, Settings, float] | None = None
    """The input being run: its seed, chunks, settings and when it was sent."""


def _start(plugin: str, report: Report) -> _Worker:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=serve, args=(theirs, plugin), daemon=True)
    process.start()
    theirs.close()
    if not ours.poll(120):
        process.kill()
        raise RuntimeError(f"the fuzz worker for {plugin} did not start")
    report.builds = ours.recv()
    return _Worker(process, ours)


def _stop(worker: _Worker) -> None:
    worker.connection.close()
    worker.process.kill()
    worker.process.join()


# -- the run -----------------------------------------------------------------------------------


def fuzz(target: Target, plan: Plan) -> Report:
    """Run ``target``'s plugin on mutated inputs as ``plan`` says; every failing input saved."""
    report = Report(target.plugin)
    streams = target.streams()
    next_seed = plan.seed

    def more() -> bool:
        if plan.inputs is not None:
            return next_seed < plan.seed + plan.inputs
        return time.monotonic() - started < plan.seconds

    workers = [_start(target.plugin, report) for _ in range(max(plan.workers, 1))]
    started = time.monotonic()
    try:
        while True:
            for worker in workers:
                if worker.busy is None and more():
                    rng = random.Random(next_seed)
                    chunks = mutated_connection(rng, streams, target.size_claims)
                    settings = target.settings(rng)
                    worker.connection.send((chunks, settings))
                    worker.busy = (next_seed, chunks, settings, time.monotonic())
                    next_seed += 1
            running = [worker for worker in workers if worker.busy is not None]
            if not running:
                break
            oldest = min(worker.busy[3] for worker in running if worker.busy is not None)
            ready = wait(
                [worker.connection for worker in running],
                timeout=max(0.0, oldest + plan.time_limit - time.monotonic()),
            )
            for index, worker in enumerate(workers):
                if worker.busy is None:
                    continue
                seed, chunks, settings, sent = worker.busy
                if worker.connection in ready:
                    try:
                        outcome = worker.connection.recv()
                    except EOFError:
                        outcome = ("died", [], f"exit code {worker.process.exitcode}")
                else:
                    if time.monotonic() - sent < plan.time_limit:
                        continue
                    limit = f"not done after {plan.time_limit:g} s"
                    outcome = ("hang", [], limit)
                report.inputs += 1
                report.slowest = max(report.slowest, time.monotonic() - sent)
                worker.busy = None
                failure = _judge(target, outcome)
                if failure is not None:
                    kind, detail = failure
                    saved = save(target.plugin, kind, seed, chunks, settings, detail)
                    report.failures.append(Failure(kind, seed, detail, saved))
                if outcome[0] in ("hang", "died"):
                    _stop(worker)
                    workers[index] = _start(target.plugin, report)
    finally:
        for worker in workers:
            _stop(worker)
    report.seconds = time.monotonic() - started
    return report


def _judge(target: Target, outcome: tuple[str, list[str], Any]) -> tuple[str, str] | None:
    status, protocols, detail = outcome
    if status == "hang":
        return "hang", detail
    if status == "died":
        return "worker died", detail
    if status == "raised":
        return "raised", detail
    if detail:
        return "plugin error", json.dumps(detail)
    complaint = target.check(protocols)
    return None if complaint is None else ("check", complaint)


# -- failing inputs, saved and read back -----------------------------------------------------------


def failures_directory() -> Path:
    return Path(os.environ.get(FAILURES_ENV) or ROOT / ".fuzz-failures")


def save(plugin: str, kind: str, seed: int, chunks: Chunks, settings: Settings, why: str) -> Path:
    """The input as a JSON file :func:`load` reads back."""
    document = {
        "plugin": plugin,
        "kind": kind,
        "seed": seed,
        "why": why,
        "settings": settings,
        "chunks": [[int(direction), base64.b64encode(data).decode()] for direction, data in chunks],
    }
    text = json.dumps(document, indent=1)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = failures_directory() / f"{plugin.split('.')[0]}-{kind.replace(' ', '-')}-{digest}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load(path: Path) -> tuple[str, Chunks, Settings]:
    """The plugin module, the chunks and the settings of a saved input."""
    document: Mapping[str, Any] = json.loads(path.read_text())
    chunks = [
        (Direction(direction), base64.b64decode(data)) for direction, data in document["chunks"]
    ]
    return document["plugin"], chunks, dict(document["settings"])
