"""The plugin author's guide cannot rot: its samples run, every hook has its section, and plugins
installed from their own directory are what ``mizu`` uses.

The guide's ```toml sample becomes ``pyproject.toml`` and its ```python samples headed by a path
comment (``# mizu_kv/plugin.py``) are written, one after the other, into that file of a
throwaway project; the project's tests (the guide's ``# tests/test_kv.py``) then run with pytest
and the hook test kit, and the samples without a path run as scripts against it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dpkt
import pytest

from mizu_core import Direction, hookspecs

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "plugins.md"
EXAMPLE = ROOT / "examples" / "mizu-redis"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
PATH_COMMENT = re.compile(r"# ([\w/]+\.py)\n")
TIMEOUT = 120


def samples(language: str) -> list[str]:
    return [code for lang, code in FENCE.findall(GUIDE.read_text()) if lang == language]


def hook_names() -> list[str]:
    return [name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "mizu_spec")]


def write_kv_capture(path: Path) -> None:
    """A KV conversation on 10.0.0.1:40000 → 10.0.0.2:7070, handshake to FIN, as packets."""
    ends = {
        Direction.CLIENT_TO_SERVER: ("10.0.0.1", 40000),
        Direction.SERVER_TO_CLIENT: ("10.0.0.2", 7070),
    }
    sequence = {Direction.CLIENT_TO_SERVER: 1000, Direction.SERVER_TO_CLIENT: 5000}
    segments = [
        (Direction.CLIENT_TO_SERVER, dpkt.tcp.TH_SYN, b""),
        (Direction.SERVER_TO_CLIENT, dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, b""),
        (Direction.CLIENT_TO_SERVER, dpkt.tcp.TH_ACK, b""),
        (Direction.CLIENT_TO_SERVER, dpkt.tcp.TH_ACK, b"SET colour red\n"),
        (Direction.SERVER_TO_CLIENT, dpkt.tcp.TH_ACK, b"OK\n"),
        (Direction.CLIENT_TO_SERVER, dpkt.tcp.TH_ACK, b"GET colour\nGET sha"),
        (Direction.CLIENT_TO_SERVER, dpkt.tcp.TH_ACK, b"pe\n"),
        (Direction.SERVER_TO_CLIENT, dpkt.tcp.TH_ACK, b"VALUE red\nNOT_FOUND\n"),
        (Direction.CLIENT_TO_SERVER, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK, b""),
        (Direction.SERVER_TO_CLIENT, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK, b""),
        (Direction.CLIENT_TO_SERVER, dpkt.tcp.TH_ACK, b""),
    ]
    with path.open("wb") as file:
        writer = dpkt.pcap.Writer(file)
        for index, (direction, flags, payload) in enumerate(segments):
            (src, sport), (dst, dport) = ends[direction], ends[direction.reverse]
            tcp = dpkt.tcp.TCP(
                sport=sport,
                dport=dport,
                seq=sequence[direction],
                ack=sequence[direction.reverse],
                flags=flags,
                data=payload,
            )
            sequence[direction] += len(payload) + bool(flags & (dpkt.tcp.TH_SYN | dpkt.tcp.TH_FIN))
            ip = dpkt.ip.IP(
                src=bytes(map(int, src.split("."))),
                dst=bytes(map(int, dst.split("."))),
                p=dpkt.ip.IP_PROTO_TCP,
                data=tcp,
            )
            frame = dpkt.ethernet.Ethernet(type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
            writer.writepkt(bytes(frame), ts=1_700_000_000 + index / 100)


@pytest.fixture(scope="module")
def guide_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project the guide builds, from its samples alone (plus a capture to test it on)."""
    project = tmp_path_factory.mktemp("mizu-kv")
    [pyproject] = samples("toml")
    (project / "pyproject.toml").write_text(pyproject)
    (project / "mizu_kv").mkdir()
    (project / "mizu_kv" / "__init__.py").write_text("")
    (project / "tests" / "data").mkdir(parents=True)
    write_kv_capture(project / "tests" / "data" / "kv.pcap")
    for code in samples("python"):
        match = PATH_COMMENT.match(code)
        if match:
            with (project / match.group(1)).open("a") as file:
                file.write(code[match.end() :] + "\n")
    return project


def run(command: list[str], cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(pythonpath)}
    env.pop("MIZU_PLUGINS", None)
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def mizu(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("mizu")
    return (
        [str(script), *args] if script.exists() else [sys.executable, "-m", "mizu_cli.main", *args]
    )


def install(project: Path, target: Path) -> None:
    """``pip install --no-deps --no-build-isolation --target TARGET`` from a copy of the project
    (building writes ``build/`` and ``*.egg-info`` beside the sources)."""
    source = target.parent / f"{project.name}-source"
    shutil.copytree(project, source, ignore=shutil.ignore_patterns("tests", "build", "*.egg-info"))
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    result = run([*pip, "--target", str(target), str(source)], target.parent, target.parent)
    assert result.returncode == 0, result.stderr


def test_every_hook_has_a_section() -> None:
    headings = [line for line in GUIDE.read_text().splitlines() if re.match(r"#{2,3} ", line)]
    hooks = hook_names()
    assert {"protocols", "configure", "dissect", "analyze", "summarize", "represent"} <= set(hooks)
    missing = [h for h in hooks if not any(f"`{h}(" in heading for heading in headings)]
    assert not missing, f"hooks of mizu_core/hookspecs.py with no ## or ### section: {missing}"


def test_the_guides_plugin_passes_its_own_tests(guide_project: Path) -> None:
    pytest_command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
    first = run([*pytest_command, "--mizu-regen"], guide_project, guide_project)
    assert first.returncode == 0, first.stdout + first.stderr
    goldens = guide_project / "tests" / "data" / "expect" / "kv"
    assert sorted(p.name for p in goldens.iterdir()) == [
        "analyze.json",
        "dissect.json",
        "represent.json",
        "summarize.json",
    ]
    again = run(pytest_command, guide_project, guide_project)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "3 passed" in again.stdout


def test_the_guides_scripts_run(guide_project: Path) -> None:
    scripts = [code for code in samples("python") if not PATH_COMMENT.match(code)]
    assert scripts
    for script in scripts:
        result = run([sys.executable, "-c", script], guide_project, guide_project)
        assert result.returncode == 0, script + result.stderr


def test_the_guides_plugin_installs_and_dissects(guide_project: Path, tmp_path: Path) -> None:
    install(guide_project, tmp_path / "site")
    plugins = run(mizu("plugins"), tmp_path, tmp_path / "site")
    [row] = [line.split() for line in plugins.stdout.splitlines() if line.startswith("kv ")]
    assert row[:3] == ["kv", "0.1.0", "50"] and row[-1] == "7070"
    dissected = run(
        mizu("dissect", str(guide_project / "tests/data/kv.pcap"), "-o", "table"),
        tmp_path,
        tmp_path / "site",
    )
    assert dissected.returncode == 0, dissected.stderr
    assert [line.split()[1:2] + line.split()[5:8] for line in dissected.stdout.splitlines()] == [
        ["KV", "SET", "colour", "OK"],
        ["KV", "GET", "colour", "VALUE"],
        ["KV", "GET", "shape", "NOT_FOUND"],
    ]


def test_the_redis_example_installs_from_its_directory(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install(EXAMPLE, site)
    where = run(
        [sys.executable, "-c", "import mizu_redis; print(mizu_redis.__file__)"], tmp_path, site
    )
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr
    plugins = run(mizu("plugins"), tmp_path, site)
    [row] = [line.split() for line in plugins.stdout.splitlines() if line.startswith("redis ")]
    assert row[:3] == ["redis", "0.1.0", "3"]
    capture = EXAMPLE / "tests" / "data" / "redis-cli.pcap"
    dissected = run(mizu("dissect", str(capture)), tmp_path, site)
    assert dissected.returncode == 0, dissected.stderr
    entries = [json.loads(line) for line in dissected.stdout.splitlines()]
    assert [e["protocol"]["name"] for e in entries] == ["redis"] * 7
    assert {e["request"]["method"] for e in entries} == {"SET", "GET", "DEL", "PING"}


def test_the_redis_macro_selects_its_entries() -> None:
    capture = EXAMPLE / "tests" / "data" / "redis-cli.pcap"
    selected = subprocess.run(
        mizu("dissect", str(capture), "-q", "redis"), capture_output=True, text=True, check=True
    )
    assert len(selected.stdout.splitlines()) == 7
    others = subprocess.run(
        mizu("dissect", str(capture), "-q", "not redis"), capture_output=True, text=True, check=True
    )
    assert others.stdout == ""


def test_uninstalling_the_example_removes_it_from_mizu_plugins() -> None:
    """The example is installed into the test environment like any third-party package;
    uninstalling it there removes it (and it is put back afterwards)."""
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "uninstall", "-y", "mizu-redis"], check=True, capture_output=True)
    try:
        listed = subprocess.run(mizu("plugins"), capture_output=True, text=True, check=True)
        assert not any(line.startswith("redis ") for line in listed.stdout.splitlines())
    finally:
        subprocess.run(
            [*pip, "install", "--no-deps", "--no-build-isolation", "-e", str(EXAMPLE)],
            check=True,
            capture_output=True,
        )
    listed = subprocess.run(mizu("plugins"), capture_output=True, text=True, check=True)
    assert any(line.startswith("redis ") for line in listed.stdout.splitlines())
