"""Developer sessions: ``nox -s tests``, ``lint``, ``typecheck``, ``fuzz``, ``bench``.

``make test`` (the README's command) runs the same suite in the project's ``.venv``; nox builds
throwaway environments instead, to prove that the packages install from scratch.
"""

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
    """Mutated real traffic into every plugin's dissectors, thousands of examples each, on the
    compiled build (the installs compile it; the first test fails if they could not)."""
    session.install("-r", "requirements-dev.txt")
    session.run(
        "pytest",
        "-q",
        "tests/core/test_builds.py::test_the_suite_runs_the_compiled_build",
        "tests/fuzz",
        *session.posargs,
        env={"MIZU_FUZZ": "1"},
    )


@nox.session
def bench(session: nox.Session) -> None:
    session.install("-r", "requirements-dev.txt")
    session.run("python", "benchmarks/run.py", *session.posargs)
