"""A hook implementation declared ``implemented_by`` a function is that function to the core:
called without the hook's frame, isolated like any hook, and checked to take the same
parameters."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from mizu_core import (
    ConnectionContext,
    Direction,
    Dissector,
    Message,
    Protocol,
    hookimpl,
    implemented_by,
)
from mizu_core.plugins import PluginError, PluginManager
from mizu_core.testkit import run_bytes

C, S = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
ECHO = Protocol(name="echo", version="1", abbr="ECHO", long_name="Echo", macro="echo")
CHUNKS = [(C, b"ok"), (S, b"ok"), (C, b"bad"), (S, b"bad")]


class EchoDissector(Dissector):
    def __init__(self, context: ConnectionContext) -> None:
        super().__init__(context)
        self.matcher = context.in_order_matcher()

    def feed(self, direction: Direction, data: bytes, timestamp: float) -> None:
        message = Message(ECHO, direction, timestamp, timestamp, len(data), {"word": data.decode()})
        if direction == C:
            message.data["method"] = "SAY"
            self.matcher.request(message)
        else:
            self.matcher.response(message)


def verdict(entry: Mapping[str, Any]) -> bool:
    return (entry["response"] or {}).get("word") == "bad"


def make_plugin(function: Callable[..., Any]) -> object:
    """A plugin whose is_error is declared implemented by ``function``, and which records
    whether its own body ran."""

    class EchoPlugin:
        wrapper_calls = 0

        @hookimpl
        def protocols(self) -> list[Protocol]:
            return [ECHO]

        @hookimpl
        def dissect(
            self, context: ConnectionContext, client_head: bytes, server_head: bytes
        ) -> Dissector:
            return EchoDissector(context)

        @hookimpl
        @implemented_by(function)
        def is_error(self, entry: Mapping[str, Any]) -> bool:
            EchoPlugin.wrapper_calls += 1
            return bool(function(entry))

    return EchoPlugin()


def test_the_core_calls_the_declared_function_not_the_hook() -> None:
    plugin = make_plugin(verdict)
    manager = PluginManager()
    loaded = manager.register(plugin, "echo")
    assert loaded.hooks["is_error"] is verdict
    outputs = run_bytes(CHUNKS, plugin)
    assert [entry["error"] for entry in outputs.entries] == [False, True]
    assert type(plugin).wrapper_calls == 0  # type: ignore[attr-defined]


def test_a_declared_function_that_raises_is_isolated_and_counted() -> None:
    def broken(entry: Mapping[str, Any]) -> bool:
        raise RuntimeError("a bug")

    outputs = run_bytes(CHUNKS, make_plugin(broken))
    assert [entry["error"] for entry in outputs.entries] == [False, False]
    assert outputs.stats["plugin_errors"] == {"EchoPlugin": 2}


def test_a_declared_function_must_take_the_hooks_parameters() -> None:
    def other(message: Mapping[str, Any]) -> bool:
        return False

    manager = PluginManager()
    with pytest.raises(PluginError, match=r"is_error is implemented by .* takes \(message\)"):
        manager.register(make_plugin(other), "echo")
    assert manager.plugins == []
