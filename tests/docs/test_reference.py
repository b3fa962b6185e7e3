"""The reference the project cites is in the project: docs/entries.md, docs/filter.md,
docs/api.md and docs/architecture.md exist, are linked from the README and ``mizu --help``, and
name every entry field, filter helper and API route the code has."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mizu_core.plugins import PluginManager
from mizu_core.query.evaluate import DIRECTIVES, INSTANTS, STRING_METHODS
from mizu_core.query.parser import ENTRY_FIELDS
from mizu_server.app import create_app
from mizu_server.hub import Hub, HubSettings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
REFERENCE = ("entries.md", "filter.md", "api.md", "architecture.md")


def text(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", REFERENCE)
def test_the_readme_links_each_reference(name: str) -> None:
    assert f"(docs/{name})" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_help_points_at_the_reference() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "mizu_cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert all(f"docs/{name}" in shown for name in ("entries.md", "filter.md", "api.md"))


def test_nothing_cites_a_document_outside_the_project() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    citing = [
        name
        for name in tracked
        if name.endswith((".py", ".md", ".js", ".html", ".toml", ".yaml"))
        and name != Path(__file__).relative_to(ROOT).as_posix()  # the pattern itself
        and re.search(
            r"CONTRACT|\bthe contract\b|\.\./shared\b|/work/shared|shared corpus",
            (ROOT / name).read_text(errors="replace"),
        )
    ]
    assert citing == []


def test_entries_md_names_every_entry_field() -> None:
    documented = text("entries.md")
    assert [field for field in sorted(ENTRY_FIELDS) if f"`{field}`" not in documented] == []


def test_filter_md_names_every_helper() -> None:
    documented = text("filter.md")
    helpers = (*STRING_METHODS, *INSTANTS, *DIRECTIVES, "json")
    assert [name for name in helpers if f"{name}(" not in documented] == []


def test_api_md_names_every_route() -> None:
    def blanks(path: str) -> str:  # /entries/{entry_id} as documented: /entries/{id}
        return re.sub(r"\{[^}]*\}", "{}", path)

    documented = blanks(text("api.md"))
    app = create_app(Hub(HubSettings(), PluginManager()))
    paths = {
        blanks(route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.resource.canonical != "/{path}"
    }
    assert paths and [path for path in sorted(paths) if path not in documented] == []
