"""Developer sessions: ``nox -s tests``, ``lint``, ``typecheck``, ``fuzz``, ``bench``.

``make test`` (the README's command) runs the same suite in the project's ``.venv``; nox builds
throwaway environments instead, to prove that the packages install from scratch.
"""

import os
import time

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-r", "requirements-dev.txt")
    session.run("pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".", "mypy")
    session.run("mypy")


@nox.session
def fuzz(session: nox.Session) -> None:
    """The nightly fuzz session: 100,000 mutated inputs of real traffic into every built-in
    plugin and the example Redis plugin, each under a time limit (a hang fails, its input saved
    under .fuzz-failures/), on the compiled build (the installs compile it; the first test
    fails if they could not); and the property tests on thousands of examples each.

    ``MIZU_FUZZ_INPUTS``, ``MIZU_FUZZ_SEED`` (today's date unless given), ``MIZU_FUZZ_WORKERS``
    and ``MIZU_FUZZ_TIME_LIMIT`` from the environment change them (tests/fuzz/harness.py)."""
    session.install("-r", "requirements-dev.txt")
    session.run(
        "pytest",
        "-q",
        "-s",  # each plugin's figures: inputs, rate, slowest input
        "tests/core/test_builds.py::test_the_suite_runs_the_compiled_build",
        "tests/fuzz",
        "tests/plugins/mizu_amqp/test_amqp_fields.py",
        "tests/plugins/mizu_kafka/test_kafka_fast_paths.py",
        *session.posargs,
        env={
            "MIZU_FUZZ": "1",
            "MIZU_FUZZ_INPUTS": os.environ.get("MIZU_FUZZ_INPUTS", "100000"),
            "MIZU_FUZZ_SEED": os.environ.get("MIZU_FUZZ_SEED", time.strftime("%Y%m%d")),
        },
    )


@nox.session
def bench(session: nox.Session) -> None:
    session.install("-r", "requirements-dev.txt")
    session.run("python", "benchmarks/run.py", *session.posargs)
