"""The dashboard's vendored libraries are listed with their version, licence and origin, and
are what the list says; the dashboard's own code loads nothing from outside the hub; the
README's pictures exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "frontend"
VENDOR = FRONTEND / "vendor"
LISTING = (VENDOR / "README.md").read_text(encoding="utf-8")
TABLE_ROW = re.compile(
    r"^\| \[(?P<name>[^\]]+)\]\([^)]*\) \| (?P<version>[\d.]+) \| (?P<licence>[^|]+) \|", re.M
)


def test_every_vendored_file_is_listed() -> None:
    files = sorted(
        path.relative_to(VENDOR).as_posix() for path in VENDOR.rglob("*") if path.is_file()
    )
    assert (
        files
        and [name for name in files if name != "README.md" and f"`{name}`" not in LISTING] == []
    )


def test_each_library_is_the_listed_version_with_its_licence() -> None:
    listed = {match["name"]: match for match in TABLE_ROW.finditer(LISTING)}
    assert set(listed) == {"Cytoscape.js", "uPlot"}
    for name, (folder, main) in {
        "Cytoscape.js": ("cytoscape", "cytoscape.esm.min.js"),
        "uPlot": ("uplot", "uPlot.esm.js"),
    }.items():
        version, licence = listed[name]["version"], listed[name]["licence"]
        assert version in (VENDOR / folder / main).read_text(encoding="utf-8"), name
        assert licence.startswith("MIT") and f"`{folder}/LICENSE`" in licence
        assert (
            "Permission is hereby granted, free of charge"
            in (VENDOR / folder / "LICENSE").read_text()
        )


def test_the_dashboard_imports_only_what_the_hub_serves() -> None:
    own = [*FRONTEND.glob("*.html"), *FRONTEND.glob("*.css"), *(FRONTEND / "js").glob("*.js")]
    loads = re.compile(
        r"""(?:\bfrom\s+|\bimport\(\s*|\bsrc=|\bhref=|url\()\s*["']?(?P<target>[^"')\s]+)"""
    )
    outside = [
        (path.name, match["target"])
        for path in own
        for match in loads.finditer(path.read_text(encoding="utf-8"))
        if re.match(r"(?:[a-z]+:)?//", match["target"])
    ]
    assert outside == []


def test_the_readme_pictures_exist() -> None:
    pictures = re.findall(
        r"!\[[^\]]*\]\(([^)]+)\)", (ROOT / "README.md").read_text(encoding="utf-8")
    )
    assert {"docs/dashboard.png", "docs/map.png", "docs/stats.png", "docs/api.png"} <= set(pictures)
    assert [picture for picture in pictures if not (ROOT / picture).is_file()] == []
