"""The compiled and the pure-Python build: which one runs, how it is chosen and built, and that
both write the same bytes for every capture of the suite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from mizu_amqp import fields
from mizu_http import http1
from mizu_kafka import messages

from mizu_cli.main import cli
from mizu_core import compiled, reassembly
from mizu_core.compiled import PURE_PYTHON_VARIABLE, inspect_directory, package_build
from tests.support.dissect_each import COMPILED_PACKAGES

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted(
    path
    for path in (ROOT / "tests" / "data").rglob("*")
    if path.suffix in (".pcap", ".pcapng") and "plugins" not in path.parts
)
HAS_COMPILER = shutil.which(os.environ.get("CC", "gcc")) is not None


def _environment(pure: bool) -> dict[str, str]:
    environment = dict(os.environ)
    environment.pop(PURE_PYTHON_VARIABLE, None)
    if pure:
        environment[PURE_PYTHON_VARIABLE] = "1"
    return environment


def test_the_suite_runs_the_compiled_build() -> None:
    """Where a C compiler is, ``make setup`` compiled the packet path: the suite (and CI)
    tests that build, and the differential test below compares it with the pure one."""
    if not HAS_COMPILER or compiled.pure_python_requested():
        pytest.fail(
            "no C compiler, or MIZU_PURE_PYTHON is set: the suite must run on the compiled build"
        )
    for package in COMPILED_PACKAGES:
        build = package_build(package)
        assert build is not None, f"{package} has no compiled modules: run `make setup`"
        assert build.runs_compiled, f"{package}: {build.reason}"
    for module in (reassembly, http1, messages, fields):
        assert module.__file__ is not None and not module.__file__.endswith(".py"), module


def test_pure_python_variable_loads_the_sources() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import mizu_http.http1, mizu_core.reassembly as r;"
            "print(mizu_http.http1.__file__); print(r.__file__)",
        ],
        capture_output=True,
        text=True,
        env=_environment(pure=True),
        check=True,
    )
    files = result.stdout.split()
    assert [Path(file).name for file in files] == ["http1.py", "reassembly.py"]


def test_version_says_which_build_runs() -> None:
    compiled_output = CliRunner().invoke(cli, ["version"]).output
    assert compiled_output.startswith("mizu 0.1.0 (compiled: ")
    assert "  http 0.1.0 (compiled: " in compiled_output
    pure = subprocess.run(
        [sys.executable, "-m", "mizu_cli", "version"],
        capture_output=True,
        text=True,
        env=_environment(pure=True),
        check=True,
    )
    assert pure.stdout.startswith("mizu 0.1.0 (pure Python: MIZU_PURE_PYTHON is set)\n")
    assert "  http 0.1.0 (pure Python: MIZU_PURE_PYTHON is set)\n" in pure.stdout


def test_an_extension_older_than_its_source_is_not_used(tmp_path: Path) -> None:
    package = tmp_path / "mizu_stale"
    package.mkdir()
    source = package / "parser.py"
    source.write_text("VALUE = 1\n")
    extension = package / f"parser{compiled.importlib.machinery.EXTENSION_SUFFIXES[0]}"
    extension.write_bytes(b"")
    os.utime(extension, (1_000_000, 1_000_000))
    build = inspect_directory(package, "mizu_stale")
    assert build.compiled_modules == ("parser",)
    assert not build.runs_compiled
    assert build.reason.startswith("compiled modules older than their sources (parser.py)")


def test_builds_write_identical_output() -> None:
    """Every capture under tests/data through both builds: the same entries, byte for byte,
    and the same summaries and errors."""
    outputs = {}
    for pure in (False, True):
        result = subprocess.run(
            [
                sys.executable,
                str(ROOT / "tests" / "support" / "dissect_each.py"),
                *map(str, CAPTURES),
            ],
            capture_output=True,
            env=_environment(pure),
            cwd=ROOT,
            check=True,
            timeout=600,
        )
        outputs[pure] = result.stdout
    compiled_lines = outputs[False].split(b"\n")
    pure_lines = outputs[True].split(b"\n")
    builds = len(COMPILED_PACKAGES)
    assert all(b": compiled: " in line for line in compiled_lines[:builds]), compiled_lines[:builds]
    assert all(b": pure Python: " in line for line in pure_lines[:builds]), pure_lines[:builds]
    assert len(CAPTURES) > 60
    assert compiled_lines[builds:] == pure_lines[builds:]


DEMO_MODULE = """
def checksum(data: bytes) -> int:
    total = 0
    for octet in data:
        total = (total * 31 + octet) & 0xFFFFFFFF
    return total
"""


def _demo_distribution(root: Path) -> Path:
    """A distribution that opts in as docs/compiled.md says."""
    (root / "mizu_demo").mkdir(parents=True)
    (root / "mizu_demo" / "__init__.py").write_text("import mizu_core  # noqa: F401\n")
    (root / "mizu_demo" / "fast.py").write_text(DEMO_MODULE)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            """\
            [project]
            name = "mizu-demo"
            version = "0"

            [tool.mizu.compiled]
            package = "mizu_demo"
            modules = ["mizu_demo/fast.py"]
            """
        )
    )
    (root / "setup.py").write_text(
        textwrap.dedent(
            f"""\
            import sys
            sys.path.insert(0, {str(ROOT / "tools")!r})
            from build_compiled import setup_compiled
            setup_compiled(__file__)
            """
        )
    )
    return root


def _build(root: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=root,
        capture_output=True,
        text=True,
        env=_environment(pure=False) | environment,
        timeout=600,
    )


@pytest.mark.slow
def test_a_distribution_compiles_its_modules_or_falls_back_with_one_warning(
    tmp_path: Path,
) -> None:
    no_compiler = _build(_demo_distribution(tmp_path / "without"), CC="false")
    assert no_compiler.returncode == 0, no_compiler.stderr
    assert no_compiler.stderr.count("WARNING: mizu:") == 1, no_compiler.stderr
    assert "installing the pure-Python build" in no_compiler.stderr
    assert not list((tmp_path / "without").rglob("*.so"))

    root = _demo_distribution(tmp_path / "with")
    built = _build(root)
    assert built.returncode == 0, built.stderr
    assert "WARNING" not in built.stderr
    probe = "import mizu_demo.fast as f; print(f.__file__, f.checksum(b'mizu'))"
    for pure, suffix in ((False, ".so"), (True, ".py")):
        ran = subprocess.run(
            [sys.executable, "-c", probe],
            cwd=root,
            capture_output=True,
            text=True,
            env=_environment(pure) | {"PYTHONPATH": str(root)},
            check=True,
        )
        file, checksum = ran.stdout.split()
        assert file.endswith(suffix) and checksum == "3352023", ran.stdout
