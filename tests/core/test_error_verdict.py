"""Entries carry the owner plugin's word on errors (its ``is_error``, else its ``summarize``'s
``error``) and which end of the connection sent the message that opened the exchange."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from mizu_core import (
    ConnectionContext,
    Direction,
    Dissector,
    Endpoint,
    Message,
    Protocol,
    hookimpl,
)
from mizu_core.testkit import run_bytes

C, S = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
NOTE = Protocol(name="note", version="1", abbr="NOTE", long_name="Notes", macro="note")


class NotePlugin:
    """Client lines are requests answered by the server's next ``OK``/``FAIL`` line; a server
    line starting ``PUSH`` is a message the server sent on its own."""

    def __init__(self, summarize_raises: bool = False) -> None:
        self.summarize_raises = summarize_raises

    @hookimpl
    def protocols(self) -> list[Protocol]:
        return [NOTE]

    @hookimpl
    def dissect(
        self, context: ConnectionContext, client_head: bytes, server_head: bytes
    ) -> Dissector:
        return NoteDissector(context)

    @hookimpl
    def summarize(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        if self.summarize_raises:
            raise RuntimeError("a bug in summarize")
        status = (entry["response"] or {}).get("status", "")
        return {"status": status, "error": status == "FAIL", "statusName": status}


class NoteDissector(Dissector):
    def __init__(self, context: ConnectionContext) -> None:
        super().__init__(context)
        self.matcher = context.in_order_matcher()

    def feed(self, direction: Direction, data: bytes, timestamp: float) -> None:
        for line in data.decode().splitlines():
            message = Message(NOTE, direction, timestamp, timestamp, len(line), {"method": line})
            if direction == C:
                self.matcher.request(message)
            elif line.startswith("PUSH"):
                self.context.emit(message, None)
            else:
                message.data = {"status": line}
                self.matcher.response(message)


CHUNKS = [(C, b"get a\n"), (S, b"OK\n"), (S, b"PUSH news\n"), (C, b"get b\n"), (S, b"FAIL\n")]


def test_the_entry_keeps_the_plugins_verdict_and_the_senders_role() -> None:
    client, server = Endpoint("10.0.0.1", 40000), Endpoint("10.0.0.2", 7000)
    outputs = run_bytes(CHUNKS, NotePlugin(), client=client, server=server)
    shown = [
        (e["request"]["method"], e["error"], e["fromServer"], e["src"]["port"], e["dst"]["port"])
        for e in outputs.entries
    ]
    assert shown == [
        ("get a", False, False, 40000, 7000),
        ("PUSH news", False, True, 7000, 40000),
        ("get b", True, False, 40000, 7000),
    ]
    assert [(row["error"], row["statusName"]) for row in outputs.rows] == [
        (False, "OK"),
        (False, ""),
        (True, "FAIL"),
    ]


def test_a_summarize_that_raises_leaves_no_error_and_is_counted() -> None:
    outputs = run_bytes(CHUNKS, NotePlugin(summarize_raises=True))
    assert [entry["error"] for entry in outputs.entries] == [False, False, False]
    # once per entry when it is made, once more for each list row
    assert outputs.stats["plugin_errors"] == {"NotePlugin": 6}


class VerdictPlugin(NotePlugin):
    """The notes plugin with an ``is_error``, which counts what it is asked."""

    def __init__(self, verdict: str = "FAIL", verdict_raises: bool = False) -> None:
        super().__init__()
        self.verdict = verdict
        self.verdict_raises = verdict_raises
        self.asked: list[str] = []

    @hookimpl
    def is_error(self, entry: Mapping[str, Any]) -> bool:
        self.asked.append("is_error")
        if self.verdict_raises:
            raise RuntimeError("a bug in is_error")
        return (entry["response"] or {}).get("status") == self.verdict

    @hookimpl
    def summarize(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        self.asked.append("summarize")
        return super().summarize(entry)


def test_is_error_gives_the_verdict_and_summarize_only_the_rows() -> None:
    plugin = VerdictPlugin()
    outputs = run_bytes(CHUNKS, plugin)
    assert [entry["error"] for entry in outputs.entries] == [False, False, True]
    # the core asks is_error of each entry it makes; summarize only for the rows listed
    assert plugin.asked == ["is_error"] * 3 + ["summarize"] * 3
    assert [row["error"] for row in outputs.rows] == [False, False, True]


def test_an_is_error_that_raises_leaves_no_error_and_is_counted() -> None:
    outputs = run_bytes(CHUNKS, VerdictPlugin(verdict_raises=True))
    assert [entry["error"] for entry in outputs.entries] == [False, False, False]
    assert outputs.stats["plugin_errors"] == {"VerdictPlugin": 3}


def test_the_test_kit_finds_is_error_and_summarize_disagreeing() -> None:
    with pytest.raises(AssertionError, match="is_error says True of entry test-1-1, its summarize"):
        run_bytes(CHUNKS, VerdictPlugin(verdict="OK"))
