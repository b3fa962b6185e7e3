"""Method arguments and field tables read by offset give what pamqp's reading gives: on every
method with random arguments, on random tables, and on mutated bytes (where both must fail
alike or agree); and where pamqp gives up (nesting past Python's stack), they fail cleanly."""

from __future__ import annotations

import datetime
import decimal
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mizu_amqp import plugin
from mizu_amqp.connection import DECODE_ERRORS, decode_method
from mizu_amqp.fields import MAX_DEPTH, FieldError, field_table, headers_table
from mizu_amqp.values import to_json
from pamqp import commands, decode, encode, frame, header
from pamqp_reading import through_pamqp

from mizu_core import Direction
from mizu_core.testkit import run_bytes
from tests.support.fuzzing import fuzz_settings

short_strings = st.text(max_size=30).filter(lambda text: len(text.encode()) < 256)
scalars = st.one_of(
    short_strings,
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(width=32),
    st.decimals(places=3, min_value=-(10**5), max_value=10**5).map(decimal.Decimal),
    st.datetimes(
        min_value=datetime.datetime(1970, 1, 2), max_value=datetime.datetime(2100, 1, 1)
    ).map(lambda moment: moment.replace(microsecond=0, tzinfo=datetime.UTC)),
    st.binary(max_size=20).map(bytearray),
    st.none(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(short_strings, inner, max_size=4)
    ),
    max_leaves=12,
)
tables = st.dictionaries(short_strings, values, max_size=6)


def pamqp_table(data: bytes) -> tuple[Any, int]:
    consumed, table = decode.field_table(data)
    return to_json(table), consumed


def same_reading(ours: Any, theirs: Any) -> None:
    """Both raised an error the dissector catches, or both gave the same value."""
    try:
        expected = theirs()
    except DECODE_ERRORS:
        with pytest.raises(DECODE_ERRORS):
            ours()
        return
    assert ours() == expected


@settings(max_examples=150, deadline=None)
@given(tables)
def test_tables_read_as_pamqp_reads_them(table: dict[str, Any]) -> None:
    data = encode.field_table(table) + b"trailing"
    assert field_table(data, 0) == pamqp_table(data)
    # Read twice: the second time a flat table comes from what the first remembered.
    assert headers_table(data, 0) == headers_table(data, 0) == pamqp_table(data)


TYPE_OCTETS = b"tbBsuIilLfdDSATFVx\x00?"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(short_strings, st.sampled_from(TYPE_OCTETS), st.binary(max_size=12))))
def test_raw_tables_of_every_type_read_as_pamqp_reads_them(
    items: list[tuple[str, int, bytes]],
) -> None:
    content = b"".join(
        bytes([len(key.encode())]) + key.encode() + bytes([kind]) + raw for key, kind, raw in items
    )
    data = struct.pack(">I", len(content)) + content
    same_reading(lambda: field_table(data, 0), lambda: pamqp_table(data))


@fuzz_settings
@given(tables, st.data())
def test_mutated_tables_fail_or_read_as_pamqp_reads_them(
    table: dict[str, Any], data: st.DataObject
) -> None:
    encoded = bytearray(encode.field_table(table))
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(encoded) - 1))
        encoded[position] = data.draw(st.integers(0, 255))
    cut = bytes(encoded[: data.draw(st.integers(0, len(encoded)))])
    same_reading(lambda: field_table(cut, 0), lambda: pamqp_table(cut))
    same_reading(lambda: headers_table(cut, 0), lambda: pamqp_table(cut))
    same_reading(lambda: headers_table(cut + b"tail", 0), lambda: pamqp_table(cut + b"tail"))


DOMAIN_VALUES = {
    "bit": st.booleans(),
    "octet": st.integers(0, 255),
    "short": st.integers(0, 2**16 - 1),
    "long": st.integers(0, 2**32 - 1),
    "longlong": st.integers(-(2**63), 2**63 - 1),
    "shortstr": short_strings,
    "longstr": st.one_of(st.text(max_size=40), st.just("\x00guest\x00secret")),
    "table": tables,
    "timestamp": st.datetimes(
        min_value=datetime.datetime(1970, 1, 2), max_value=datetime.datetime(2100, 1, 1)
    ).map(lambda moment: moment.replace(microsecond=0, tzinfo=datetime.UTC)),
}
METHODS = sorted(commands.INDEX_MAPPING.items())
pytestmark = pytest.mark.filterwarnings("ignore:This command is deprecated:DeprecationWarning")


def encoded_arguments(method: type[Any], arguments: list[Any]) -> bytes:
    """The arguments as a method frame's payload, bits packed as the spec says (pamqp's
    marshal would validate them first: an exchange name of any text is what is wanted here)."""
    parts = [struct.pack(">I", method.index)]
    bits: list[bool] = []
    for name, value in zip(method.__slots__, arguments, strict=True):
        domain = getattr(method, "_" + name)
        if domain == "bit" and len(bits) < 8:
            bits.append(value)
            continue
        if bits:
            parts.append(bytes([sum(1 << i for i, bit in enumerate(bits) if bit)]))
            bits = []
        if domain == "bit":
            bits.append(value)
        else:
            parts.append(encode.by_type(value, domain))
    if bits:
        parts.append(bytes([sum(1 << i for i, bit in enumerate(bits) if bit)]))
    return b"".join(parts)


@st.composite
def method_payloads(draw: st.DrawFn) -> bytes:
    _index, method = draw(st.sampled_from(METHODS))
    arguments = [draw(DOMAIN_VALUES[getattr(method, "_" + name)]) for name in method.__slots__]
    if method is commands.Connection.StartOk:
        arguments[1] = draw(st.sampled_from(["PLAIN", "AMQPLAIN"]))
    return encoded_arguments(method, arguments)


@settings(max_examples=200, deadline=None)
@given(method_payloads())
def test_every_method_reads_as_pamqp_reads_it(payload: bytes) -> None:
    assert decode_method(payload, 1) == through_pamqp(payload)


@fuzz_settings
@given(method_payloads(), st.data())
def test_mutated_methods_fail_or_read_as_pamqp_reads_them(
    payload: bytes, data: st.DataObject
) -> None:
    mutated = bytearray(payload)
    for _ in range(data.draw(st.integers(0, 3))):
        position = data.draw(st.integers(4, max(len(mutated) - 1, 4)))
        if position < len(mutated):
            mutated[position] = data.draw(st.integers(0, 255))
    cut = bytes(mutated[: data.draw(st.integers(4, len(mutated)))])
    same_reading(lambda: decode_method(cut, 1), lambda: through_pamqp(cut))


def nested(depth: int) -> bytes:
    """A field table holding a table holding a table … ``depth`` deep."""
    table = struct.pack(">I", 0)
    for _ in range(depth):
        content = b"\x01nF" + table
        table = struct.pack(">I", len(content)) + content
    return table


def test_nesting_is_bounded() -> None:
    value, _ = field_table(nested(MAX_DEPTH), 0)
    for _ in range(MAX_DEPTH):
        value = value["n"]
    assert value == {}
    with pytest.raises(FieldError):
        field_table(nested(MAX_DEPTH + 1), 0)


def test_a_header_table_nested_past_the_stack_is_a_malformed_frame_not_a_plugin_error() -> None:
    """pamqp's reading recursed until Python's stack ran out: the dissector raised, and the
    core took the connection away from the plugin."""
    properties = commands.Basic.Properties(content_type="text/plain")
    content_header = frame.marshal(header.ContentHeader(0, 2, properties), 1)
    # Swap in a headers table 2,000 deep (the flags word gains the headers bit).
    payload = bytearray(content_header[7:-1])
    payload[12:14] = struct.pack(">H", 0x8000 | 0x2000)
    payload += nested(2000)
    deep_header = struct.pack(">BHI", 2, 1, len(payload)) + payload + b"\xce"
    chunks = [
        (Direction.CLIENT_TO_SERVER, b"AMQP\x00\x00\x09\x01"),
        (
            Direction.CLIENT_TO_SERVER,
            frame.marshal(commands.Basic.Publish(routing_key="q"), 1) + deep_header,
        ),
    ]
    outputs = run_bytes(chunks, plugin)
    assert outputs.stats["plugin_errors"] == {}
    assert outputs.stats["plugin_counters"]["plugin"]["malformed_frames"] == 1
