"""Plugin discovery through entry points, ranking by priority, isolation of failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from mizu_core import Dissector, Protocol, hookimpl
from mizu_core.capture import FileSource
from mizu_core.engine import Engine
from mizu_core.plugins import HOOK_NAMES, PluginError, PluginManager
from tests.support.packets import ACK, PSH, conversation, ip_frame, write_frames


def two_connections(tmp_path: Path) -> Path:
    frames = conversation(
        ("127.0.0.1", 40001),
        ("127.0.0.2", 8081),
        [(True, b"ping"), (False, b"pong"), (True, b"again"), (False, b"ok")],
    )
    frames += conversation(
        ("127.0.0.1", 40002),
        ("127.0.0.2", 7777),
        [(True, b"hello"), (False, b"world"), (True, b"bye"), (False, b"!")],
    )
    return write_frames(tmp_path / "two.pcap", frames)


def run(plugins: PluginManager, capture: Path) -> tuple[list[dict], Engine]:
    entries: list[dict] = []
    engine = Engine(plugins, entries.append)
    engine.run(FileSource(capture))
    engine.finish()
    return entries, engine


def test_discovery_ranks_by_priority_not_registration_order(turns_on_path: Path) -> None:
    plugins = PluginManager().discover(deny=["faulty"])
    names = [p.name for p in plugins.plugins]
    assert names.index("turns") < names.index("eager") < names.index("tcp")
    turns = next(p for p in plugins.plugins if p.name == "turns")
    assert (turns.version, turns.priority, turns.ports) == ("1.2.3", 5, (7777,))
    assert "No module named 'mizu_turns_missing_dependency'" in plugins.load_failures["broken"]


def test_highest_ranked_plugin_claims_every_connection(turns_on_path: Path, tmp_path: Path) -> None:
    plugins = PluginManager().discover(deny=["faulty"])
    entries, engine = run(plugins, two_connections(tmp_path))
    assert {e["protocol"]["name"] for e in entries} == {"turns"}
    assert [e["request"]["bytes"] for e in entries] == [4, 5, 5, 3]
    assert [e["response"]["bytes"] for e in entries] == [4, 2, 5, 1]
    assert engine.stats()["dispatch"]["connections_claimed"] == {"turns": 2}


def test_a_plugin_that_raises_is_isolated_counted_and_named(
    turns_on_path: Path, tmp_path: Path
) -> None:
    plugins = PluginManager().discover(allow=["faulty", "turns", "tcp"])
    entries, engine = run(plugins, two_connections(tmp_path))
    stats = engine.stats()
    # Once in dissect (port 8081), once in its dissector (port 7777).
    assert stats["plugin_errors"] == {"faulty": 2}
    by_port: dict[int, list[dict]] = {}
    for entry in entries:
        # An answer whose question was lost travels from the server: src is then the server.
        server_port = min(entry["src"]["port"], entry["dst"]["port"])
        by_port.setdefault(server_port, []).append(entry)
    # 8081: faulty declined by raising; turns had the whole connection.
    assert [e["request"]["bytes"] for e in by_port[8081]] == [4, 5]
    # 7777: faulty claimed it and failed on its first bytes; turns took it from the next ones.
    answers = by_port[7777]
    assert [e["protocol"]["name"] for e in answers] == ["turns", "turns"]
    assert [e["request"] and e["request"]["bytes"] for e in answers] == [None, 3]
    assert [e["response"]["bytes"] for e in answers] == [5, 1]


def test_allow_list_from_environment(turns_on_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIZU_PLUGINS", "eager, tcp")
    plugins = PluginManager().discover()
    assert [p.name for p in plugins.plugins] == ["eager", "tcp"]


def test_allow_list_names_a_missing_plugin() -> None:
    plugins = PluginManager().discover(allow=["tcp", "nonesuch"])
    assert "not installed" in plugins.load_failures["nonesuch"]


def test_settings_reach_the_plugin_which_validates_them(turns_on_path: Path) -> None:
    plugins = PluginManager().discover(allow=["faulty", "tcp"])
    plugins.configure({"faulty": {"mode": "x"}})
    with pytest.raises(PluginError, match=r"plugins\.faulty: unknown key colour"):
        plugins.configure({"faulty": {"colour": "red"}})
    with pytest.raises(PluginError, match="plugin tcp takes no settings"):
        plugins.configure({"tcp": {"x": 1}})
    with pytest.raises(PluginError, match="unknown plugin"):
        plugins.configure({"nonesuch": {}})


class NoProtocols:
    @hookimpl
    def dissect(self, context, client_head, server_head):
        return None


def test_a_plugin_must_declare_protocols() -> None:
    with pytest.raises(PluginError, match="declares no protocols"):
        PluginManager().register(NoProtocols(), "empty")


def test_macros_come_from_the_plugins(turns_on_path: Path) -> None:
    plugins = PluginManager().discover(allow=["turns", "tcp"])
    assert plugins.macros == {
        "turns": 'protocol.macro == "turns"',
        "tcp": 'protocol.macro == "tcp"',
    }


class SwappingPlugin:
    """Knows that b"REPLY" comes from the server, whatever the core guessed."""

    def __init__(self) -> None:
        self.fed: list[tuple[str, bytes]] = []
        self.clients: list[int] = []
        self.swapped: list[bool] = []

    @hookimpl
    def protocols(self):
        return [Protocol(name="swap", version="1", abbr="SW", long_name="Swap", macro="swap")]

    @hookimpl
    def dissect(self, context, client_head, server_head):
        if client_head.startswith(b"REPLY"):
            self.swapped.append(context.swap_roles())
        self.clients.append(context.connection.client.port)
        plugin = self

        class Recorder(Dissector):
            def feed(self, direction, data, timestamp):
                plugin.fed.append((direction.name, data))

        return Recorder(context)


def test_a_dissector_can_correct_the_guessed_roles(tmp_path: Path) -> None:
    server, client = ("127.0.0.2", 40001), ("127.0.0.1", 50002)  # ports that do not tell
    frames = [  # mid-connection: the server's reply comes first
        ip_frame(*server, *client, 7000, 100, ACK | PSH, b"REPLY 1"),
        ip_frame(*client, *server, 100, 7007, ACK | PSH, b"ASK 2"),
        ip_frame(*server, *client, 7007, 105, ACK | PSH, b"REPLY 2"),
    ]
    plugin = SwappingPlugin()
    plugins = PluginManager()
    plugins.register(plugin, "swap")
    run(plugins, write_frames(tmp_path / "swap.pcap", frames))
    assert plugin.swapped == [True]
    assert plugin.clients == [50002]
    assert plugin.fed == [
        ("SERVER_TO_CLIENT", b"REPLY 1"),
        ("CLIENT_TO_SERVER", b"ASK 2"),
        ("SERVER_TO_CLIENT", b"REPLY 2"),
    ]


def test_roles_seen_in_the_handshake_cannot_be_swapped(tmp_path: Path) -> None:
    # A client that speaks as a server would: the handshake still says who is who.
    frames = conversation(("127.0.0.1", 40001), ("127.0.0.2", 50002), [(True, b"REPLY")])
    plugin = SwappingPlugin()
    plugins = PluginManager()
    plugins.register(plugin, "swap")
    run(plugins, write_frames(tmp_path / "handshake.pcap", frames))
    assert plugin.swapped == [False]
    assert plugin.clients == [40001]
    assert plugin.fed == [("CLIENT_TO_SERVER", b"REPLY")]


class MacroPlugin:
    @hookimpl
    def protocols(self):
        return [
            Protocol(name="web", version="1", abbr="W1", long_name="Web 1", macro="web1"),
            Protocol(
                name="web",
                version="2",
                abbr="W2",
                long_name="Web 2",
                macro="web2",
                macros={"web1": 'protocol.name == "web"', "webs": "web1 or web2"},
            ),
        ]


def test_declared_macros_override_the_default_words() -> None:
    plugins = PluginManager()
    plugins.register(MacroPlugin(), "web")
    assert plugins.macros == {
        "web1": 'protocol.name == "web"',
        "web2": 'protocol.macro == "web2"',
        "webs": "web1 or web2",
    }


def test_hook_names_are_those_of_the_specs() -> None:
    assert HOOK_NAMES == (
        "protocols",
        "configure",
        "dissect",
        "analyze",
        "summarize",
        "is_error",
        "represent",
    )


def test_trace_hooks_prints_every_call(
    turns_on_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("MIZU_TRACE_HOOKS", "1")
    plugins = PluginManager().discover(allow=["turns"])
    entries, _ = run(plugins, two_connections(tmp_path))
    traced = capsys.readouterr().err.splitlines()
    assert entries and any(line.startswith("mizu: hook turns.protocols() -> [") for line in traced)
    dissects = [line for line in traced if line.startswith("mizu: hook turns.dissect(context=")]
    assert len(dissects) == 2 and all("-> <mizu_turns.turns.TurnDissector" in d for d in dissects)
    assert all(line.endswith(" ms]") for line in traced)


def test_no_trace_without_the_variable(
    turns_on_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.delenv("MIZU_TRACE_HOOKS", raising=False)
    run(PluginManager().discover(allow=["turns"]), two_connections(tmp_path))
    assert "mizu: hook" not in capsys.readouterr().err


def test_what_configure_returns_reaches_the_dissectors_through_their_context(
    turns_on_path: Path, tmp_path: Path
) -> None:
    plugins = PluginManager().discover(allow=["turns", "tcp"])
    plugins.configure({"turns": {"label": "here", "max-turn-bytes": 3}})
    assert type(plugins.settings["turns"]).__name__ == "TurnSettings"
    assert plugins.settings["tcp"] == {}
    entries, _ = run(plugins, two_connections(tmp_path))
    assert {(e["request"]["label"], e["request"]["bytes"]) for e in entries} == {("here", 3)}


def test_plugins_are_configured_before_their_first_connection(
    turns_on_path: Path, tmp_path: Path
) -> None:
    plugins = PluginManager().discover(allow=["turns", "tcp"])
    assert not plugins.configured
    entries, _ = run(plugins, two_connections(tmp_path))
    assert plugins.configured and "label" not in entries[0]["request"]


def test_settings_of_a_plugin_left_out_are_not_looked_at(turns_on_path: Path) -> None:
    plugins = PluginManager().discover(allow=["tcp"])
    plugins.configure({"turns": {"colour": "red"}})
    with pytest.raises(PluginError, match="settings for unknown plugin"):
        plugins.configure({"turnz": {}})
