"""Dissect each capture named on the command line on its own, as ``mizu dissect FILE`` does, and
print which build ran, then per capture its entries, its summary and its exit status: what
tests/core/test_builds.py compares between the compiled and the pure-Python build."""

from __future__ import annotations

import sys

from click.testing import CliRunner

from mizu_cli.main import cli
from mizu_core.compiled import package_build

COMPILED_PACKAGES = ("mizu_core", "mizu_http", "mizu_kafka", "mizu_amqp")
"""The packages whose distributions compile modules (their ``[tool.mizu.compiled]``)."""


def main(paths: list[str]) -> None:
    out = sys.stdout.buffer
    for package in COMPILED_PACKAGES:
        build = package_build(package)
        out.write(f"{package}: {build.describe() if build else 'no compiled modules'}\n".encode())
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(cli, ["dissect", path, "--workers", "1"])
        out.write(f"== {path}: exit {result.exit_code}\n".encode())
        out.write(result.stdout_bytes)
        out.write(result.stderr_bytes)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            out.write(f"raised {result.exception!r}\n".encode())
    out.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
