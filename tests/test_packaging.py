"""The wheel ships what the hub serves: every package, and the dashboard's files (which live in
the top-level ``frontend/``) as ``mizu_server/frontend/``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
TOP_PACKAGES = ("mizu_core", "mizu_server", "mizu_cli")


def test_every_package_is_listed() -> None:
    found = {
        ".".join(init.parent.relative_to(REPO_ROOT).parts)
        for top in TOP_PACKAGES
        for init in (REPO_ROOT / top).rglob("__init__.py")
    }
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert listed - {"mizu_server.frontend"} == found, (
        "pyproject.toml's [tool.setuptools] packages must list every package"
    )


def test_the_wheel_ships_the_dashboard_and_the_hub_serves_it(tmp_path: Path) -> None:
    # built from a copy: setuptools writes build/ and *.egg-info beside the sources
    source = tmp_path / "source"
    for name in (*TOP_PACKAGES, "frontend"):
        shutil.copytree(
            REPO_ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"),
            *("--no-build-isolation", "--wheel-dir", str(tmp_path / "dist"), str(source)),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("mizu-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    sources = {
        path.relative_to(REPO_ROOT / "frontend").as_posix()
        for path in (REPO_ROOT / "frontend").rglob("*")
        if path.is_file()
    }
    assert sources and "index.html" in sources
    assert {f"mizu_server/frontend/{name}" for name in sources} <= names
    # installed from the wheel, the hub finds its own copy, not a checkout's
    located = subprocess.run(
        [sys.executable, "-c", "import mizu_server.app as a; print(a.DEFAULT_STATIC_DIR)"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert Path(located) == tmp_path / "site" / "mizu_server" / "frontend"


def test_a_checkout_serves_the_top_level_frontend() -> None:
    from mizu_server.app import DEFAULT_STATIC_DIR

    assert DEFAULT_STATIC_DIR == REPO_ROOT / "frontend"
    assert (DEFAULT_STATIC_DIR / "index.html").is_file()
