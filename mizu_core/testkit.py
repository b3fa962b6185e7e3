"""The hook test kit: test one plugin against captures or bytes, and compare with goldens.

Installed as a pytest plugin (entry point ``pytest11``), so a plugin author's tests get the
``mizu_golden`` fixture and the ``--mizu-regen`` flag with nothing to configure::

    from mizu_core.testkit import run_capture

    def test_ping(mizu_golden):
        mizu_golden.check("tests/data/ping.pcap", plugin="redis")

The goldens of ``DIR/NAME.pcap`` live in ``DIR/expect/NAME/`` as ``dissect.json`` (the pairs
the dissector emitted), ``analyze.json`` (the entries), ``summarize.json`` (the list rows) and
``represent.json`` (the detail views). ``pytest --mizu-regen`` writes them anew; review the
diff before committing it.

The plugin runs alone (with no other plugin offered the connections) through the real engine:
the same decoding, reassembly, pairing and isolation as ``mizu dissect``. A plugin that
implements ``is_error`` is checked to say of every entry what its ``summarize`` says (an
``AssertionError`` names the first entry where they differ).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mizu_core.capture import FileSource
from mizu_core.dispatch import Dispatcher
from mizu_core.dissector import CloseReason
from mizu_core.engine import Engine, EngineSettings
from mizu_core.entry import Representation, Row
from mizu_core.model import ConnectionInfo, Direction, Endpoint, Message, Pair
from mizu_core.plugins import PluginManager
from mizu_core.reassembly import Connection
from mizu_core.views import entry_representation, entry_row

HOOK_FILES = ("dissect", "analyze", "summarize", "represent")
DEFAULT_CLIENT = Endpoint("10.0.0.1", 40000)
DEFAULT_SERVER = Endpoint("10.0.0.2", 80)


@dataclass
class HookOutputs:
    """What each hook produced for one input."""

    pairs: list[Pair] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    representations: list[Representation] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "dissect": [pair_json(pair) for pair in self.pairs],
            "analyze": self.entries,
            "summarize": self.rows,
            "represent": self.representations,
        }


def pair_json(pair: Pair) -> dict[str, Any]:
    def message(msg: Message | None) -> dict[str, Any] | None:
        if msg is None:
            return None
        return {
            "protocol": msg.protocol.name,
            "version": msg.protocol.version,
            "direction": msg.direction.name,
            "firstTime": round(msg.first_time, 6),
            "lastTime": round(msg.last_time, 6),
            "size": msg.size,
            "data": msg.data,
        }

    described = {
        "connection": pair.connection.key,
        "request": message(pair.request),
        "response": message(pair.response),
    }
    if pair.unpaired:
        described["unpaired"] = pair.unpaired
    return described


def load_plugin(
    plugin: str | ModuleType | object, settings: Mapping[str, Any] | None = None
) -> PluginManager:
    """A plugin manager holding only ``plugin``: an installed plugin's name, or a module or
    object with hook implementations (a plugin under development, not installed)."""
    manager = PluginManager()
    if isinstance(plugin, str):
        manager.discover(allow=[plugin])
        if plugin in manager.load_failures:
            raise LookupError(f"plugin {plugin}: {manager.load_failures[plugin]}")
        name = plugin
    else:
        name = getattr(plugin, "__name__", type(plugin).__name__).rsplit(".", 1)[-1]
        manager.register(plugin, name)
    manager.configure({name: dict(settings or {})})
    return manager


def _outputs(manager: PluginManager, run: Any) -> HookOutputs:
    outputs = HookOutputs()

    def sink(entry: dict[str, Any]) -> None:
        outputs.entries.append(entry)

    engine = Engine(manager, sink, EngineSettings(tapper_id="test", on_pair=outputs.pairs.append))
    with engine.watchdog.watching():  # a plugin stuck on the input is isolated, and reported
        run(engine)
        engine.finish()
    _round_trip(outputs, manager, engine)
    return outputs


def _round_trip(outputs: HookOutputs, manager: PluginManager, engine: Engine) -> None:
    # Entries travel as JSON: compare what a reader of the output gets.
    outputs.entries = [json.loads(json.dumps(entry, default=str)) for entry in outputs.entries]
    outputs.rows = [entry_row(manager, entry) for entry in outputs.entries]
    _check_verdicts(manager, outputs)
    outputs.representations = [entry_representation(manager, entry) for entry in outputs.entries]
    outputs.stats = engine.stats()


def _check_verdicts(manager: PluginManager, outputs: HookOutputs) -> None:
    """A plugin's ``is_error`` must agree with its ``summarize``: the entry keeps the first's
    answer, its row in the list shows the second's."""
    if manager.errors:
        return  # a hook that raised gave no answer to compare
    for entry, row in zip(outputs.entries, outputs.rows, strict=True):
        owner = manager.owner(entry["protocol"]["name"])
        if owner is None or "is_error" not in owner.hooks or "summarize" not in owner.hooks:
            continue
        if (row.get("error") is True) is not (entry.get("error") is True):
            raise AssertionError(
                f"plugin {owner.name}: is_error says {entry.get('error')!r} of entry "
                f"{entry['id']}, its summarize says error {row.get('error')!r}"
            )


def run_capture(
    capture: str | os.PathLike[str],
    plugin: str | ModuleType | object,
    settings: Mapping[str, Any] | None = None,
) -> HookOutputs:
    """Run a pcap/pcapng file through ``plugin`` alone; every hook's output."""
    manager = load_plugin(plugin, settings)
    return _outputs(manager, lambda engine: engine.run(FileSource(capture)))


def run_bytes(
    chunks: Iterable[tuple[Direction, bytes]],
    plugin: str | ModuleType | object,
    settings: Mapping[str, Any] | None = None,
    client: Endpoint = DEFAULT_CLIENT,
    server: Endpoint = DEFAULT_SERVER,
    close: CloseReason = CloseReason.FIN,
    role_guessed: bool = False,
) -> HookOutputs:
    """Feed byte chunks of one connection straight to ``plugin`` (no packets, no sockets).

    Each chunk is ``(direction, data)``; chunk ``i`` is stamped ``1.0 + i / 1000`` seconds.
    An empty ``data`` stands for a gap of one byte in that direction. ``role_guessed``: the
    capture joined the connection mid-way (it saw no handshake).
    """
    manager = load_plugin(plugin, settings)

    def run(engine: Engine) -> None:
        dispatcher: Dispatcher = engine.dispatcher
        connection = Connection(1.0)
        connection.info = ConnectionInfo(
            number=1, client=client, server=server, start_time=1.0, role_guessed=role_guessed
        )
        connection.roles_known = True
        dispatcher.opened(connection)
        time = 1.0
        for index, (direction, data) in enumerate(chunks):
            time = 1.0 + index / 1000
            connection.stats.packets[direction] += 1
            connection.stats.bytes[direction] += len(data)
            connection.stats.last_time = time
            if data:
                dispatcher.data(connection, direction, data, time)
            else:
                dispatcher.gap(connection, direction, 1, time)
        dispatcher.closed(connection, close, time)

    return _outputs(manager, run)


class Golden:
    """The ``mizu_golden`` fixture: compare hook outputs with the files in ``expect/``."""

    def __init__(self, regenerate: bool) -> None:
        self.regenerate = regenerate

    def check(
        self,
        capture: str | os.PathLike[str],
        plugin: str | ModuleType | object,
        settings: Mapping[str, Any] | None = None,
        hooks: Sequence[str] = HOOK_FILES,
    ) -> HookOutputs:
        """Run ``capture`` through ``plugin`` and compare each hook's output with its golden."""
        outputs = run_capture(capture, plugin, settings)
        self.compare(outputs, Path(capture), hooks)
        return outputs

    def compare(
        self, outputs: HookOutputs, capture: Path, hooks: Sequence[str] = HOOK_FILES
    ) -> None:
        directory = capture.parent / "expect" / capture.stem
        produced = outputs.as_json()
        for hook in hooks:
            path = directory / f"{hook}.json"
            text = (
                json.dumps(
                    produced[hook], indent=2, sort_keys=True, ensure_ascii=False, default=str
                )
                + "\n"
            )
            if self.regenerate:
                directory.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
                continue
            if not path.exists():
                pytest.fail(f"no golden {path}; run pytest --mizu-regen to create it, then review")
            expected = json.loads(path.read_text(encoding="utf-8"))
            assert json.loads(text) == expected, f"{hook} output differs from {path}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--mizu-regen",
        action="store_true",
        default=False,
        help="Mizu test kit: write the golden files anew instead of comparing with them.",
    )


@pytest.fixture
def mizu_golden(request: pytest.FixtureRequest) -> Golden:
    """Compare a plugin's hook outputs on a capture with golden JSON beside the capture."""
    return Golden(bool(request.config.getoption("--mizu-regen")))
