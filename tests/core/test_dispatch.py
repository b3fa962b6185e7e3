"""The dispatcher's layers: a dissector unwraps its connection and the inner bytes go to the
plugins as a plain connection's would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mizu_core import (
    CloseReason,
    ConnectionContext,
    Direction,
    Dissector,
    InnerConnection,
    Layer,
    Message,
    Protocol,
    hookimpl,
)
from mizu_core import tcp_plugin as tcp
from mizu_core.capture import FileSource
from mizu_core.engine import Engine, EngineSettings
from mizu_core.plugins import PluginManager
from tests.support.packets import conversation, write_frames

WRAP = Protocol(name="wrap", version="1", abbr="WRAP", long_name="Wrapped", macro="wrap")
LINE = Protocol(name="line", version="1", abbr="LINE", long_name="Lines", macro="line")
MAGIC = b"WRAP "


def unmask(data: bytes) -> bytes:
    return bytes(byte ^ 0x20 for byte in data)


class WrapPlugin:
    """A toy layer: after ``WRAP <alpn>\\n`` on both sides, bytes are XORed with 0x20."""

    def __init__(self) -> None:
        self.offered_inner = 0

    @hookimpl
    def protocols(self) -> list[Protocol]:
        return [WRAP]

    @hookimpl
    def dissect(
        self, context: ConnectionContext, client_head: bytes, server_head: bytes
    ) -> Dissector | None:
        if context.layers:
            self.offered_inner += 1
        if client_head.startswith(MAGIC) and not context.layers:
            return WrapDissector(context)
        return None


class WrapDissector(Dissector):
    def __init__(self, context: ConnectionContext) -> None:
        super().__init__(context)
        self.heads = [bytearray(), bytearray()]
        self.inner: InnerConnection | None = None
        self.alpn = ""

    def feed(self, direction: Direction, data: bytes, timestamp: float) -> None:
        head = self.heads[direction]
        if self.inner is None or head is not None:
            head += data
            end = head.find(b"\n")
            if end < 0:
                return
            if direction == Direction.CLIENT_TO_SERVER:
                self.alpn = head[len(MAGIC) : end].decode()
            data = bytes(head[end + 1 :])
            self.heads[direction] = None  # type: ignore[call-overload]
            if self.inner is None:
                self.inner = self.context.unwrap(
                    Layer("wrap", {"alpn": self.alpn, "decrypted": True}, self.alpn)
                )
        self.inner.feed(direction, unmask(data), timestamp)

    def close(self, timestamp: float, reason: CloseReason) -> None:
        self.context.emit(
            Message(WRAP, Direction.CLIENT_TO_SERVER, 0.0, 0.0, 0, {"method": "WRAP"}), None
        )
        if self.inner is not None and self.alpn != "leave-open":
            self.inner.close(timestamp, reason)


class LinePlugin:
    """Each client line is a request answered by the next server line."""

    def __init__(self, fail_on: bytes = b"") -> None:
        self.fail_on = fail_on
        self.layers: list[tuple[Layer, ...]] = []

    @hookimpl
    def protocols(self) -> list[Protocol]:
        return [LINE]

    @hookimpl
    def dissect(
        self, context: ConnectionContext, client_head: bytes, server_head: bytes
    ) -> Dissector | None:
        if client_head.startswith(b"ASK"):
            self.layers.append(context.layers)
            return LineDissector(context, self.fail_on)
        return None


class LineDissector(Dissector):
    def __init__(self, context: ConnectionContext, fail_on: bytes) -> None:
        super().__init__(context)
        self.matcher = context.in_order_matcher()
        self.buffers = [bytearray(), bytearray()]
        self.fail_on = fail_on

    def feed(self, direction: Direction, data: bytes, timestamp: float) -> None:
        if self.fail_on and self.fail_on in data:
            raise ValueError("a bug in the inner plugin")
        buffer = self.buffers[direction]
        buffer += data
        while (end := buffer.find(b"\n")) >= 0:
            line = bytes(buffer[:end]).decode()
            del buffer[: end + 1]
            message = Message(LINE, direction, timestamp, timestamp, end + 1, {"method": line})
            if direction == Direction.CLIENT_TO_SERVER:
                self.matcher.request(message)
            else:
                message.data = {"status": line}
                self.matcher.response(message)


def wrapped_capture(tmp_path: Path, client_hello: bytes = b"WRAP line/1\n") -> Path:
    turns = [
        (True, client_hello + unmask(b"ASK one\n")),
        (False, b"WRAP ok\n" + unmask(b"ANSWER one\n")),
        (True, unmask(b"ASK two\nASK thr")),
        (True, unmask(b"ee\n")),
        (False, unmask(b"ANSWER two\n")),
    ]
    return write_frames(
        tmp_path / "wrapped.pcap", conversation(("127.0.0.1", 40001), ("127.0.0.2", 9000), turns)
    )


def run(capture: Path, *plugins: tuple[object, str]) -> tuple[list[dict[str, Any]], Engine]:
    manager = PluginManager()
    for plugin, name in plugins:
        manager.register(plugin, name)
    manager.register(tcp, "tcp")
    entries: list[dict[str, Any]] = []
    engine = Engine(manager, entries.append, EngineSettings(tapper_id="file"))
    engine.run(FileSource(capture))
    engine.finish()
    return entries, engine


def test_inner_bytes_go_to_the_plugins_and_entries_carry_the_layer(tmp_path: Path) -> None:
    wrap, line = WrapPlugin(), LinePlugin()
    entries, engine = run(wrapped_capture(tmp_path), (wrap, "wrap"), (line, "line"))
    inner = [entry for entry in entries if entry["protocol"]["name"] == "line"]
    assert [(e["request"]["method"], (e["response"] or {}).get("status")) for e in inner] == [
        ("ASK one", "ANSWER one"),
        ("ASK two", "ANSWER two"),
        ("ASK three", None),
    ]
    assert all(e["wrap"] == {"alpn": "line/1", "decrypted": True} for e in inner)
    assert all(e["dst"]["port"] == 9000 for e in inner)
    outer = [entry for entry in entries if entry["protocol"]["name"] == "wrap"]
    assert len(outer) == 1 and "wrap" not in outer[0]
    # One numbering per connection on the wire, inner entries included.
    assert sorted(entry["id"] for entry in entries) == [f"file-1-{n}" for n in (1, 2, 3, 4)]
    assert line.layers == [(Layer("wrap", {"alpn": "line/1", "decrypted": True}, "line/1"),)]
    assert wrap.offered_inner == 0  # the unwrapping plugin is not offered its own inner bytes
    dispatch = engine.stats()["dispatch"]
    assert dispatch["inner_connections"] == 1
    assert dispatch["connections_claimed"] == {"wrap": 1, "line": 1}


def test_inner_bytes_no_plugin_claims_make_no_tcp_entry(tmp_path: Path) -> None:
    entries, engine = run(wrapped_capture(tmp_path), (WrapPlugin(), "wrap"))
    assert [entry["protocol"]["name"] for entry in entries] == ["wrap"]
    assert engine.stats()["dispatch"]["connections_unclaimed"] == 1


def test_a_failing_inner_dissector_is_isolated_from_the_outer_one(tmp_path: Path) -> None:
    line = LinePlugin(fail_on=b"two")
    entries, engine = run(wrapped_capture(tmp_path), (WrapPlugin(), "wrap"), (line, "line"))
    names = [entry["protocol"]["name"] for entry in entries]
    assert names.count("wrap") == 1
    assert [e["request"]["method"] for e in entries if e["protocol"]["name"] == "line"] == [
        "ASK one"
    ]
    assert engine.stats()["plugin_errors"] == {"line": 1}


def test_inner_connections_left_open_are_closed_with_the_outer_one(tmp_path: Path) -> None:
    line = LinePlugin()
    capture = wrapped_capture(tmp_path, client_hello=b"WRAP leave-open\n")
    entries, _ = run(capture, (WrapPlugin(), "wrap"), (line, "line"))
    # "ASK three" was pending in the inner connection's matcher: flushed when the core closed it.
    assert ("ASK three", None) in [
        (e["request"]["method"], e["response"]) for e in entries if e["protocol"]["name"] == "line"
    ]
