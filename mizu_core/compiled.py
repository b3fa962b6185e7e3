"""Which build runs: the packet path compiled (mypyc C extensions beside the ``.py`` files) or
the same modules uncompiled.

Mizu's distributions compile their hot modules at install when they can (docs/compiled.md).
Python imports an extension in preference to its source, so this module puts a finder first in
``sys.meta_path`` that chooses the source instead, for the modules of Mizu's own packages (top
level ``mizu_*``), when:

* ``MIZU_PURE_PYTHON`` is set (not empty, not ``0``): a developer steps through the code, or
  a test compares the two builds;
* a package's compiled modules are older than their sources (edited since the build: a stale
  extension would run the old code; ``make compile`` rebuilds them);
* a package's support library does not load (a broken install).

The choice is made once per package directory, for all of its modules, because the modules of
one compiled group call each other directly in C: half compiled, half not would run a mix.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

PURE_PYTHON_VARIABLE = "MIZU_PURE_PYTHON"
SUPPORT_LIBRARY = "_native__mypyc"
"""The shared library of a package's compiled group (see tools/build_compiled.py)."""


def pure_python_requested() -> bool:
    return os.environ.get(PURE_PYTHON_VARIABLE, "") not in ("", "0")


class PackageBuild:
    """The build of one package directory's modules."""

    # A plain class, not a dataclass: its generated methods would be compiled at every start-up.
    __slots__ = ("compiled_modules", "reason", "runs_compiled")

    def __init__(
        self, compiled_modules: tuple[str, ...], runs_compiled: bool, reason: str = ""
    ) -> None:
        self.compiled_modules = compiled_modules
        """Modules whose extension is installed beside their source."""
        self.runs_compiled = runs_compiled
        self.reason = reason
        """Why the extensions are not used, when they are not."""

    def describe(self) -> str:
        if self.runs_compiled:
            return f"compiled: {len(self.compiled_modules)} modules"
        return f"pure Python: {self.reason}"


def _extension_stem(path: Path) -> str | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return None


def inspect_directory(directory: Path, package: str) -> PackageBuild:
    """What is compiled in ``directory`` (the package ``package``) and whether it is used."""
    compiled: list[str] = []
    stale: list[str] = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        entries = []
    for path in entries:
        stem = _extension_stem(path)
        if stem is None:
            continue
        source = path.with_name(stem + ".py")
        if not source.exists():
            continue
        compiled.append(stem)
        if source.stat().st_mtime > path.stat().st_mtime:
            stale.append(source.name)
    modules = tuple(sorted(compiled))
    if not modules:
        return PackageBuild(modules, False, "not compiled at install")
    if pure_python_requested():
        return PackageBuild(modules, False, f"{PURE_PYTHON_VARIABLE} is set")
    if stale:
        return PackageBuild(
            modules,
            False,
            f"compiled modules older than their sources ({', '.join(sorted(stale))}); "
            "`make compile` rebuilds them",
        )
    try:
        importlib.import_module(f"{package}.{SUPPORT_LIBRARY}")
    except ImportError as error:
        return PackageBuild(modules, False, f"the compiled modules do not load ({error})")
    return PackageBuild(modules, True)


class _SourceChooser(importlib.abc.MetaPathFinder):
    """Finds the ``.py`` of a Mizu module whose extension is not to be used."""

    def __init__(self) -> None:
        self.builds: dict[Path, PackageBuild] = {}

    def build_of(self, directory: Path, package: str) -> PackageBuild:
        build = self.builds.get(directory)
        if build is None:
            build = self.builds[directory] = inspect_directory(directory, package)
        return build

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if not package.startswith("mizu_") or name == SUPPORT_LIBRARY:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if (
            spec is None
            or spec.origin is None
            or not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)
        ):
            return None  # the ordinary finders find it the same way
        origin = Path(spec.origin)
        source = origin.with_name(name + ".py")
        if not source.exists() or self.build_of(origin.parent, package).runs_compiled:
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def _installed_chooser() -> _SourceChooser:
    for finder in sys.meta_path:
        if isinstance(finder, _SourceChooser):
            return finder
    finder = _SourceChooser()
    sys.meta_path.insert(0, finder)
    return finder


CHOOSER = _installed_chooser()


def package_build(package: str) -> PackageBuild | None:
    """The build of the (imported or importable) top-level ``package``; None when it has no
    compiled modules at all (a plugin written in plain Python)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    build = CHOOSER.build_of(Path(next(iter(spec.submodule_search_locations))), package)
    return build if build.compiled_modules else None
