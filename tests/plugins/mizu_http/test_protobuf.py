"""Protobuf decoding: schema-less trees checked against real encodings made by the protobuf
package from .proto files compiled here, and decoding by name through a descriptor set."""

from __future__ import annotations

import base64
import json
import math
import re
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, message_factory
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import Message
from hypothesis import assume, given
from hypothesis import strategies as st

# The plugin may not be installed in the environment running the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "plugins" / "mizu_http"))

from mizu_http.protobuf import (
    ProtobufError,
    compile_protos,
    decode_message,
    decode_named,
    load_descriptor_set,
    method_types,
    pool_from_descriptor_set,
)

SAMPLE_PROTO = """
syntax = "proto3";
package mizu.test;

enum Colour { COLOUR_UNSPECIFIED = 0; RED = 1; GREEN = 2; }

message Inner { string name = 1; int32 id = 2; }

message Node { Node child = 1; string label = 2; }

message Sample {
  int32 small = 1;
  int64 negative = 2;
  sint32 zigzag = 3;
  string text = 4;
  bytes blob = 5;
  float ratio = 6;
  double precise = 7;
  Inner inner = 8;
  repeated Inner inners = 9;
  repeated int32 packed = 10;
  repeated string tags = 11;
  map<string, int32> counts = 12;
  Colour colour = 13;
  oneof choice {
    string label = 14;
    Inner detail = 15;
  }
  fixed32 unsigned32 = 16;
  sfixed64 signed64 = 17;
  Node node = 18;
}
"""

SERVICE_PROTO = """
syntax = "proto3";
package mizu.test;
import "sample.proto";
import "google/protobuf/timestamp.proto";

message LookupRequest { string key = 1; repeated int64 ids = 2; }
message LookupReply { Sample sample = 1; bool found = 2; google.protobuf.Timestamp at = 3; }

service Lookup { rpc Find(LookupRequest) returns (LookupReply); }
"""

LEGACY_PROTO = """
syntax = "proto2";
package mizu.legacy;

message Legacy {
  optional group Result = 1 {
    optional string url = 2;
    repeated int32 hits = 3;
  }
  optional int32 tail = 4;
}
"""

UINT64 = 1 << 64


@pytest.fixture(scope="module")
def proto_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("protos")
    for name, text in [
        ("sample.proto", SAMPLE_PROTO),
        ("service.proto", SERVICE_PROTO),
        ("legacy.proto", LEGACY_PROTO),
    ]:
        (directory / name).write_text(text)
    return directory


@pytest.fixture(scope="module")
def descriptor_set(proto_dir: Path) -> bytes:
    protos = [proto_dir / name for name in ("service.proto", "sample.proto", "legacy.proto")]
    return compile_protos(protos, [proto_dir])


@pytest.fixture(scope="module")
def pool(descriptor_set: bytes) -> DescriptorPool:
    return pool_from_descriptor_set(descriptor_set)


@pytest.fixture(scope="module")
def message_class(pool: DescriptorPool) -> Callable[[str], type[Message]]:
    def find(full_name: str) -> type[Message]:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))

    return find


def varint(number: int, value: int) -> dict[str, Any]:
    field: dict[str, Any] = {"field": number, "wireType": "varint", "value": value % UINT64}
    if value < 0:
        field["signed"] = value
    return field


def nested(number: int, *fields: dict[str, Any]) -> dict[str, Any]:
    return {"field": number, "wireType": "length-delimited", "value": list(fields)}


def text(number: int, value: str) -> dict[str, Any]:
    return {"field": number, "wireType": "length-delimited", "value": value}


def count_fields(tree: list[dict[str, Any]]) -> int:
    return sum(
        1 + (count_fields(field["value"]) if isinstance(field["value"], list) else 0)
        for field in tree
    )


def test_scalars_decode_to_numbered_fields(message_class: Callable[[str], type[Message]]) -> None:
    sample = message_class("mizu.test.Sample")(
        small=150,
        negative=-2,
        zigzag=-3,
        text="héllo wörld",
        blob=b"\x00\xff\x10",
        ratio=1.5,
        precise=-0.1,
        colour=2,
        unsigned32=1,
        signed64=-7,
    )
    minus_tenth = 0xBFB999999999999A
    assert decode_message(sample.SerializeToString()) == [
        varint(1, 150),
        varint(2, -2),
        varint(3, 5),  # zigzag: -3 is sent as 5
        text(4, "héllo wörld"),
        {
            "field": 5,
            "wireType": "length-delimited",
            "value": "AP8Q",
            "encoding": "base64",
            "packedVarints": [0, 2175],
        },
        {"field": 6, "wireType": "fixed32", "value": 0x3FC00000, "float": 1.5},
        {
            "field": 7,
            "wireType": "fixed64",
            "value": minus_tenth,
            "signed": minus_tenth - UINT64,
            "double": -0.1,
        },
        varint(13, 2),
        # The smallest denormal float32, given with the fewest digits that read back to it.
        {"field": 16, "wireType": "fixed32", "value": 1, "float": 1e-45},
        {"field": 17, "wireType": "fixed64", "value": UINT64 - 7, "signed": -7, "double": "NaN"},
    ]


def test_nested_repeated_and_map_fields(message_class: Callable[[str], type[Message]]) -> None:
    sample_class = message_class("mizu.test.Sample")
    inner_class = message_class("mizu.test.Inner")
    sample = sample_class(
        inner=inner_class(name="n", id=1),
        inners=[inner_class(name="a"), inner_class(id=-1)],
        tags=["x", "y"],
        counts={"k": 7},
    )
    assert decode_message(sample.SerializeToString()) == [
        nested(8, text(1, "n"), varint(2, 1)),
        nested(9, text(1, "a")),
        nested(9, varint(2, -1)),
        text(11, "x"),
        text(11, "y"),
        nested(12, text(1, "k"), varint(2, 7)),  # a map entry is a message {1: key, 2: value}
    ]


def test_packed_varints_are_offered_beside_bytes(
    message_class: Callable[[str], type[Message]],
) -> None:
    sample_class = message_class("mizu.test.Sample")
    assert decode_message(sample_class(packed=[1, 2, 300]).SerializeToString()) == [
        {
            "field": 10,
            "wireType": "length-delimited",
            "value": "AQKsAg==",
            "encoding": "base64",
            "packedVarints": [1, 2, 300],
        }
    ]
    minus_one = b"\xff" * 9 + b"\x01"
    assert decode_message(sample_class(packed=[-1]).SerializeToString()) == [
        {
            "field": 10,
            "wireType": "length-delimited",
            "value": base64.b64encode(minus_one).decode(),
            "encoding": "base64",
            "packedVarints": [-1],
        }
    ]


def test_packed_varints_that_parse_as_a_message_read_as_one(
    message_class: Callable[[str], type[Message]],
) -> None:
    # The documented ambiguity: packed [8, 150] are the bytes of the message {1: 150}.
    sample = message_class("mizu.test.Sample")(packed=[8, 150])
    assert decode_message(sample.SerializeToString()) == [nested(10, varint(1, 150))]


def test_oneof_members(message_class: Callable[[str], type[Message]]) -> None:
    sample_class = message_class("mizu.test.Sample")
    labelled = sample_class(label="lbl")
    assert decode_message(labelled.SerializeToString()) == [text(14, "lbl")]
    detailed = sample_class(detail=message_class("mizu.test.Inner")(id=3))
    assert decode_message(detailed.SerializeToString()) == [nested(15, varint(2, 3))]


def test_groups(message_class: Callable[[str], type[Message]]) -> None:
    legacy = message_class("mizu.legacy.Legacy")(tail=3)
    legacy.result.url = "u"
    legacy.result.hits.extend([1, 2])
    assert decode_message(legacy.SerializeToString()) == [
        {
            "field": 1,
            "wireType": "start-group",
            "value": [text(2, "u"), varint(3, 1), varint(3, 2)],
        },
        varint(4, 3),
    ]


def test_printable_text_that_also_parses_as_a_message_stays_text(
    message_class: Callable[[str], type[Message]],
) -> None:
    # "hi" is also field 13 = 105, but a message seldom starts with a printable byte.
    sample_class = message_class("mizu.test.Sample")
    assert decode_message(sample_class(text="hi").SerializeToString()) == [text(4, "hi")]
    # A message whose first field is a 32..126-byte string is all printable but starts with a
    # newline (the tag of field 1): it stays a message.
    name = "a name long enough for a printable length byte"
    inner = message_class("mizu.test.Inner")(name=name)
    assert decode_message(sample_class(inner=inner).SerializeToString()) == [
        nested(8, text(1, name))
    ]


def test_nesting_stops_at_max_depth(message_class: Callable[[str], type[Message]]) -> None:
    node_class = message_class("mizu.test.Node")
    node = node_class(label="l3")
    for label in ("l2", "l1", "l0"):
        node = node_class(label=label, child=node)
    encoded = node.SerializeToString()
    deepest = node_class(label="l3").SerializeToString()
    assert decode_message(encoded, max_depth=2) == [
        nested(
            1,
            nested(
                1,
                {
                    "field": 1,
                    "wireType": "length-delimited",
                    "value": base64.b64encode(deepest).decode(),
                    "encoding": "base64",
                    "packedVarints": list(deepest),
                },
                text(2, "l2"),
            ),
            text(2, "l1"),
        ),
        text(2, "l0"),
    ]
    assert decode_message(encoded)[0]["value"][0]["value"][0]["value"] == [text(2, "l3")]


def test_groups_deeper_than_max_depth_are_an_error() -> None:
    with pytest.raises(ProtobufError, match="groups nested deeper than 1"):
        decode_message(b"\x0b\x0b\x0c\x0c", max_depth=1)


def test_max_fields_counts_the_whole_tree() -> None:
    message = b"\x0a\x02\x08\x01\x10\x02"  # {1: {1: 1}, 2: 2}
    assert count_fields(decode_message(message, max_fields=3)) == 3
    with pytest.raises(ProtobufError, match="more than 2 fields"):
        decode_message(message, max_fields=2)


def test_a_failed_nested_guess_uses_no_field_budget() -> None:
    # Field 1 holds two valid fields then a bad tag, so it stays bytes; field 2 still fits.
    message = b"\x0a\x05\x08\x01\x08\x02\x07\x10\x02"
    assert decode_message(message, max_fields=2) == [
        {
            "field": 1,
            "wireType": "length-delimited",
            "value": "CAEIAgc=",
            "encoding": "base64",
            "packedVarints": [8, 1, 8, 2, 7],
        },
        varint(2, 2),
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\x00\x00\xc0\x7f", "NaN"),
        (b"\x00\x00\x80\x7f", "Infinity"),
        (b"\x00\x00\x80\xff", "-Infinity"),
        (b"\x00\x00\x00\x80", -0.0),
        (b"\xcd\xcc\xcc\x3d", 0.1),
        (b"\xff\xff\x7f\x7f", 3.4028235e38),  # the largest float32: shorter roundings overflow
    ],
)
def test_float_readings_are_json_numbers_or_named(raw: bytes, expected: float | str) -> None:
    [field] = decode_message(b"\x0d" + raw)
    assert field["float"] == expected
    assert json.dumps(field["float"], allow_nan=False) == json.dumps(expected)


def test_an_empty_message_and_an_empty_value() -> None:
    assert decode_message(b"") == []
    assert decode_message(b"\x0a\x00") == [text(1, "")]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x08", "truncated varint at offset 1"),
        (b"\x08\x80", "truncated varint at offset 1"),
        (b"\x0a\x05ab", "5 bytes needed at offset 2, 2 left"),
        (b"\x09\x01\x02", "8 bytes needed at offset 1, 2 left"),
        (b"\x0d\x01", "4 bytes needed at offset 1, 1 left"),
        (b"\x00", "invalid field number 0 at offset 0"),
        (b"\x80\x80\x80\x80\x10", "invalid field number 536870912 at offset 0"),
        (b"\x0e", "invalid wire type 6 at offset 0"),
        (b"\x0f", "invalid wire type 7 at offset 0"),
        (b"\x0c", "unmatched end of group 1 at offset 0"),
        (b"\x0b\x14", "unmatched end of group 2 at offset 1"),
        (b"\x0b\x08\x01", "group 1 is not closed"),
        (b"\x08" + b"\xff" * 10 + b"\x01", "varint longer than 10 bytes at offset 1"),
        (b"\x08" + b"\xff" * 9 + b"\x02", "varint above 64 bits at offset 1"),
    ],
)
def test_malformed_messages_raise_protobuf_error(data: bytes, error: str) -> None:
    with pytest.raises(ProtobufError, match=re.escape(error)):
        decode_message(data)


@st.composite
def damaged_samples(draw: st.DrawFn) -> bytes:
    """A real, nested encoding cut short or with one byte changed."""
    chunk = draw(st.binary(max_size=8))
    nested_message = b"\x0a" + bytes([len(chunk) + 2]) + b"\x12" + bytes([len(chunk)]) + chunk
    encoded = bytearray(draw(st.binary(max_size=16)) + nested_message + b"\x0b\x10\x01\x0c")
    position = draw(st.integers(0, len(encoded) - 1))
    if draw(st.booleans()):
        return bytes(encoded[:position])
    encoded[position] = draw(st.integers(0, 255))
    return bytes(encoded)


@given(st.binary(max_size=300) | damaged_samples())
def test_arbitrary_bytes_decode_or_raise_protobuf_error(data: bytes) -> None:
    try:
        tree = decode_message(data, max_depth=4, max_fields=40)
    except ProtobufError:
        return
    assert count_fields(tree) <= 40
    json.dumps(tree, allow_nan=False)  # JSON as entries need it: no NaN, no bytes


@pytest.fixture(scope="module")
def sample_class(message_class: Callable[[str], type[Message]]) -> type[Message]:
    return message_class("mizu.test.Sample")


@given(value=st.integers(-(1 << 63), (1 << 63) - 1))
def test_int64_round_trip(sample_class: type[Message], value: int) -> None:
    expected = [varint(2, value)] if value else []
    assert decode_message(sample_class(negative=value).SerializeToString()) == expected


@given(value=st.floats(allow_nan=False).filter(bool))
def test_double_round_trip(sample_class: type[Message], value: float) -> None:
    [field] = decode_message(sample_class(precise=value).SerializeToString())
    named = {math.inf: "Infinity", -math.inf: "-Infinity"}
    assert field["double"] == named.get(value, value)


@given(value=st.floats(width=32, allow_nan=False, allow_infinity=False).filter(bool))
def test_float_round_trip_keeps_the_float32(sample_class: type[Message], value: float) -> None:
    [field] = decode_message(sample_class(ratio=value).SerializeToString())
    assert struct.pack("<f", field["float"]) == struct.pack("<f", value)


@given(
    value=st.text(
        st.characters(codec="utf-8", categories=["L", "M", "N", "P", "S"]) | st.just(" "),
        min_size=1,
    )
)
def test_printable_text_round_trip(sample_class: type[Message], value: str) -> None:
    assume(value[0] != " " or value.strip())
    assert decode_message(sample_class(text=value).SerializeToString()) == [text(4, value)]


def test_method_types_resolve_a_grpc_path(pool: DescriptorPool) -> None:
    assert method_types(pool, "/mizu.test.Lookup/Find") == (
        "mizu.test.LookupRequest",
        "mizu.test.LookupReply",
    )


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("mizu.test.Lookup/Find", "not a gRPC path"),
        ("/mizu.test.Lookup/Find/extra", "not a gRPC path"),
        ("/mizu.test.Lookup/", "not a gRPC path"),
        ("/mizu.test.Nowhere/Find", "unknown gRPC service mizu.test.Nowhere"),
        ("/mizu.test.Lookup/Lose", "service mizu.test.Lookup has no method Lose"),
    ],
)
def test_method_types_errors(pool: DescriptorPool, path: str, error: str) -> None:
    with pytest.raises(ProtobufError, match=re.escape(error)):
        method_types(pool, path)


def test_named_decoding_of_a_grpc_call(
    pool: DescriptorPool, message_class: Callable[[str], type[Message]]
) -> None:
    request_type, response_type = method_types(pool, "/mizu.test.Lookup/Find")
    request = message_class(request_type)(key="k1", ids=[1, -2])
    assert decode_named(request.SerializeToString(), request_type, pool) == {
        "key": "k1",
        "ids": ["1", "-2"],
    }
    sample = message_class("mizu.test.Sample")(
        text="t", blob=b"\x01", colour=1, counts={"a": 1}, detail={"id": 4}
    )
    reply = message_class(response_type)(sample=sample, found=True)
    reply.at.FromSeconds(86400)
    assert decode_named(reply.SerializeToString(), f".{response_type}", pool) == {
        "sample": {
            "text": "t",
            "blob": "AQ==",
            "counts": {"a": 1},
            "colour": "RED",
            "detail": {"id": 4},
        },
        "found": True,
        "at": "1970-01-02T00:00:00Z",
    }


def test_named_decoding_errors(pool: DescriptorPool) -> None:
    with pytest.raises(ProtobufError, match=re.escape("unknown message type mizu.test.Missing")):
        decode_named(b"", "mizu.test.Missing", pool)
    with pytest.raises(ProtobufError, match=re.escape("not a mizu.test.LookupRequest")):
        decode_named(b"\x0a\x05ab", "mizu.test.LookupRequest", pool)


def test_load_descriptor_set_from_a_file(tmp_path: Path, descriptor_set: bytes) -> None:
    path = tmp_path / "descriptors.pb"
    path.write_bytes(descriptor_set)
    pool = load_descriptor_set(path)
    assert method_types(pool, "/mizu.test.Lookup/Find")[0] == "mizu.test.LookupRequest"
    with pytest.raises(ProtobufError, match="cannot read descriptor set"):
        load_descriptor_set(tmp_path / "absent.pb")


def test_a_descriptor_set_without_its_imports_is_refused(descriptor_set: bytes) -> None:
    complete = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set)
    partial = descriptor_pb2.FileDescriptorSet(
        file=[file for file in complete.file if file.name != "sample.proto"]
    )
    with pytest.raises(ProtobufError, match=re.escape("service.proto imports sample.proto, which")):
        pool_from_descriptor_set(partial.SerializeToString())
    with pytest.raises(ProtobufError, match="not a FileDescriptorSet"):
        pool_from_descriptor_set(b"\xff")


def test_compile_errors_carry_protoc_messages(tmp_path: Path) -> None:
    broken = tmp_path / "broken.proto"
    broken.write_text('syntax = "proto3";\nmessage Broken { strin name = 1; }\n')
    with pytest.raises(ProtobufError, match=r"protoc failed: .*strin"):
        compile_protos([broken])
    with pytest.raises(ProtobufError, match=re.escape("no .proto files")):
        compile_protos([])
