"""Building a Mizu distribution with its hot modules compiled by mypyc (docs/compiled.md).

A distribution opts in with a table in its ``pyproject.toml``::

    [tool.mizu.compiled]
    package = "mizu_http"                                  # its top-level package
    modules = ["mizu_http/http1.py", "mizu_http/bodies.py"]  # paths from the pyproject's folder

and a ``setup.py`` that calls :func:`setup_compiled`. ``pip install`` then compiles those
modules into C extensions that sit beside their ``.py`` files (one source of truth: the same
files run uncompiled). When it cannot (no C compiler, no Python headers, mypyc missing,
``MIZU_PURE_PYTHON=1`` at install), it says so in one warning and installs the pure-Python
build, which behaves the same, only slower.

The modules of one distribution form one mypyc group: they call each other's functions and
classes directly in C and share one support library, ``<package>._native__mypyc``.

Run as a script, it rebuilds the extensions of the repository's distributions in place (what
``make compile`` does; ``--stale`` only where a compiled module is older than its source).
"""

from __future__ import annotations

import argparse
import importlib.machinery
import os
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parent.parent
PURE_PYTHON_VARIABLE = "MIZU_PURE_PYTHON"
GROUP_SUFFIX = "_native"
"""The group's support library is ``<package>._native__mypyc``."""


def _warn(reason: str) -> None:
    print(
        f"WARNING: mizu: {reason}: installing the pure-Python build (it behaves the same, "
        "several times slower). Install gcc and the Python headers (Debian: gcc python3-dev) "
        "and reinstall for the compiled one.",
        file=sys.stderr,
    )


def pure_python_requested() -> bool:
    return os.environ.get(PURE_PYTHON_VARIABLE, "") not in ("", "0")


def _extension_stem(path: Path) -> str | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return None


def compiled_table(root: Path) -> tuple[str, list[str]]:
    """The ``[tool.mizu.compiled]`` package and modules of the distribution at ``root``."""
    with (root / "pyproject.toml").open("rb") as file:
        table = tomllib.load(file)["tool"]["mizu"]["compiled"]
    return str(table["package"]), [str(module) for module in table["modules"]]


def compiled_extensions(package: str, modules: Sequence[str]) -> list[Any]:
    """The mypyc extensions of ``modules`` (paths relative to the distribution's root), or
    none with a warning when they cannot be made."""
    if pure_python_requested():
        print(
            f"mizu: {PURE_PYTHON_VARIABLE} is set: installing {package} uncompiled",
            file=sys.stderr,
        )
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _warn("mypyc (part of mypy) is not installed")
        return []
    try:
        return list(
            mypycify(
                [
                    # the lint's mypy run checks the code; these keep the build's check to
                    # what compiling needs, whatever is installed beside it
                    "--ignore-missing-imports",
                    "--disable-error-code=empty-body",
                    *modules,
                ],
                opt_level="3",
                group_name=f"{package}.{GROUP_SUFFIX}",
            )
        )
    except SystemExit:  # mypyc reports type errors on stderr and exits
        _warn("mypyc rejected the modules (see its errors above)")
        return []


def setup_compiled(setup_file: str, **arguments: Any) -> None:
    """``setuptools.setup`` for the distribution of ``setup_file`` (its ``setup.py``), its
    ``[tool.mizu.compiled]`` modules compiled when possible."""
    from setuptools import setup
    from setuptools.command.build_ext import build_ext
    from setuptools.errors import (
        CCompilerError,
        CompileError,
        ExecError,
        LinkError,
        PlatformError,
    )

    build_errors = (CCompilerError, CompileError, ExecError, LinkError, PlatformError, OSError)

    class OptionalBuildExt(build_ext):
        """Builds the extensions, or none of them: a group's modules need its support
        library, so a build that failed half-way leaves nothing behind."""

        def run(self) -> None:
            self._remove_orphans()
            try:
                super().run()
            except build_errors as error:
                for extension in self.extensions:
                    Path(self.get_ext_fullpath(extension.name)).unlink(missing_ok=True)
                self.extensions = []
                _warn(f"the compiled modules could not be built ({error})")
                return
            # An extension whose C did not change is not rebuilt, yet it now stands for the
            # sources as they are: its time says so (a newer source means a stale build).
            for extension in self.extensions:
                output = Path(self.get_ext_fullpath(extension.name))
                if output.exists():
                    os.utime(output)

        def _remove_orphans(self) -> None:
            """Extensions of modules no longer listed (left by an earlier build, here or in
            the build folder) would load against a support library that lacks them."""
            wanted = {Path(self.get_ext_fullpath(extension.name)) for extension in self.extensions}
            folders = {path.parent for path in wanted}
            for folder in folders:
                for path in folder.iterdir():
                    stem = _extension_stem(path)
                    if stem is not None and path not in wanted and (folder / f"{stem}.py").exists():
                        path.unlink()

    root = Path(setup_file).resolve().parent
    os.chdir(root)  # mypyc names modules by their paths from here
    # The plugins are typed against the core's sources, which a build in an isolated
    # environment does not have installed.
    os.environ.setdefault("MYPYPATH", str(REPOSITORY))
    package, modules = compiled_table(root)
    setup(
        ext_modules=compiled_extensions(package, modules),
        cmdclass={"build_ext": OptionalBuildExt},
        **arguments,
    )


# -- rebuilding in place ----------------------------------------------------------------------


def distributions() -> list[Path]:
    """The repository's distributions that compile modules."""
    candidates = [REPOSITORY, *sorted((REPOSITORY / "plugins").iterdir())]
    return [
        root
        for root in candidates
        if (root / "setup.py").exists() and "[tool.mizu.compiled]" in _read(root / "pyproject.toml")
    ]


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def is_stale(root: Path) -> bool:
    """A compiled module of the distribution at ``root`` is missing or older than its source."""
    _, modules = compiled_table(root)
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    for module in modules:
        source = root / module
        extension = source.with_name(source.stem + suffix)
        if not extension.exists() or extension.stat().st_mtime < source.stat().st_mtime:
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rebuild the compiled modules in place.")
    parser.add_argument(
        "--stale",
        action="store_true",
        help="only distributions whose compiled modules are missing or older than their sources",
    )
    args = parser.parse_args(argv)
    if pure_python_requested():
        print(f"{PURE_PYTHON_VARIABLE} is set: nothing to compile")
        return 0
    for root in distributions():
        if args.stale and not is_stale(root):
            continue
        print(f"compiling {root.relative_to(REPOSITORY)} ...", flush=True)
        result = subprocess.run(
            [sys.executable, "setup.py", "--quiet", "build_ext", "--inplace"], cwd=root
        )
        if result.returncode:
            return result.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
