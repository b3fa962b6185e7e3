"""The packages import downwards only, without cycles, and no module grows past a size a reader
can hold (docs/architecture.md draws the layers).

- ``mizu_core`` imports no other part of Mizu, and its modules reach each other by their own
  names, never through the package (whose ``__init__`` imports them: a cycle by another name);
- a plugin imports ``mizu_core``'s public API (the package itself) and its own modules;
- ``mizu_server`` imports ``mizu_core``, never the CLI nor a plugin; its hub never imports
  capture code (it runs without capture privileges): that is the tapper runtime's;
- ``mizu_cli`` imports ``mizu_core`` and ``mizu_server``, never a plugin (plugins are found
  through their entry points).

Imports inside functions count; those under ``if TYPE_CHECKING:`` do not (they never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {
    "mizu_core": REPO_ROOT / "mizu_core",
    "mizu_server": REPO_ROOT / "mizu_server",
    "mizu_cli": REPO_ROOT / "mizu_cli",
}
PLUGINS = {
    package.parent.name: package.parent
    for pattern in ("plugins/*/mizu_*/__init__.py", "examples/*/mizu_*/__init__.py")
    for package in sorted(REPO_ROOT.glob(pattern))
}
"""The plugins' packages, built-in and example: each its own distribution."""
CAPTURE_MODULES = frozenset(
    {
        "mizu_core.capture",
        "mizu_core.reassembly",
        "mizu_core.dispatch",
        "mizu_core.engine",
        "mizu_core.parallel",
        "mizu_core.pcap_export",
        "mizu_server.tapper",
        "mizu_server.tapper_client",
    }
)
"""What captures and dissects packets, and the tapper runtime that runs it. Parsing headers
(``mizu_core.decode``) is not capturing: the hub cuts frames to their IP packets with it."""
HUB_MODULES_EXCEPT = frozenset({"mizu_server.tapper", "mizu_server.tapper_client"})
"""The modules of ``mizu_server`` that are not the hub's."""
MAX_LINES = 900
"""A module longer than this has more than one job (generated data excepted)."""


@dataclass(frozen=True, slots=True)
class Import:
    importer: str
    imported: str
    line: int
    through_package: bool
    """``from package import name`` where ``name`` is no module: the package's ``__init__``."""


def modules() -> dict[str, Path]:
    found = {}
    for root in (*PACKAGES.values(), *PLUGINS.values()):
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root.parent).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = modules()
TOP_LEVEL = {*PACKAGES, *PLUGINS}


def imports_of(name: str, path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skipped = {
        id(node)
        for branch in ast.walk(tree)
        if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
        for statement in branch.body
        for node in ast.walk(statement)
    }
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, node.lineno, False)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in MODULES:
                    yield Import(name, submodule, node.lineno, False)
                else:
                    yield Import(name, base, node.lineno, True)


def project_imports() -> list[Import]:
    return [
        found
        for name, path in MODULES.items()
        for found in imports_of(name, path)
        if found.imported.split(".")[0] in TOP_LEVEL
    ]


IMPORTS = project_imports()


def top(module: str) -> str:
    return module.split(".")[0]


def test_the_check_sees_every_package() -> None:
    assert {"mizu_http", "mizu_amqp", "mizu_kafka", "mizu_redis"} <= set(PLUGINS)
    assert "mizu_core.dispatch" in MODULES and "mizu_cli.main" in MODULES
    assert any(found.importer == "mizu_server.hub" for found in IMPORTS)


def test_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for found in IMPORTS:
        if found.imported in MODULES and found.imported != found.importer:
            graph[found.importer].add(found.imported)
    cycles = strongly_connected(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(sorted(c)) for c in cycles)


def test_no_module_imports_its_own_package() -> None:
    """A package's ``__init__`` imports its modules: one that imports the package back runs
    before the names it wants exist, or only thanks to the order of the ``__init__``."""
    wrong = [
        f"{found.importer}:{found.line} imports from {found.imported}"
        for found in IMPORTS
        if found.through_package
        and found.imported in MODULES
        and found.importer.startswith(found.imported + ".")
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("layer", "allowed"),
    [
        ("mizu_core", {"mizu_core"}),
        ("mizu_server", {"mizu_core", "mizu_server"}),
        ("mizu_cli", {"mizu_core", "mizu_server", "mizu_cli"}),
    ],
)
def test_layers_import_downwards(layer: str, allowed: set[str]) -> None:
    wrong = [
        f"{found.importer}:{found.line} imports {found.imported}"
        for found in IMPORTS
        if top(found.importer) == layer and top(found.imported) not in allowed
    ]
    assert not wrong, "\n".join(wrong)


def test_plugins_use_only_the_public_api() -> None:
    wrong = [
        f"{found.importer}:{found.line} imports {found.imported}"
        for found in IMPORTS
        if top(found.importer) in PLUGINS
        and top(found.imported) != top(found.importer)
        and found.imported != "mizu_core"
    ]
    assert not wrong, "\n".join(wrong)


def test_the_hub_never_imports_capture_code() -> None:
    hub = {
        name for name in MODULES if top(name) == "mizu_server" and name not in HUB_MODULES_EXCEPT
    }
    reachable = {
        start: sorted(reached & CAPTURE_MODULES)
        for start in sorted(hub)
        if (reached := reach(start))
    }
    wrong = {start: reached for start, reached in reachable.items() if reached}
    assert not wrong, "\n".join(f"{start} reaches {', '.join(r)}" for start, r in wrong.items())


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_readable(name: str) -> None:
    path = MODULES[name]
    text = path.read_text(encoding="utf-8")
    lines = text.count("\n")
    generated = "generated" in "\n".join(text.splitlines()[:5]).lower()
    assert generated or lines <= MAX_LINES, (
        f"{path.relative_to(REPO_ROOT)} has {lines} lines: split it by job"
    )


def reach(start: str) -> set[str]:
    graph: dict[str, set[str]] = {}
    for found in IMPORTS:
        graph.setdefault(found.importer, set()).add(found.imported)
    seen: set[str] = set()
    todo = [start]
    while todo:
        for imported in graph.get(todo.pop(), ()):
            if imported not in seen:
                seen.add(imported)
                todo.append(imported)
    return seen


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """The import graph's cycles: its strongly connected components of more than one module
    (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found
